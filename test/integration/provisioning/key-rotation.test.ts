import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { SESSION_COOKIE, bindUser, startSession } from "../../../lib/auth/session.js";
import { KEY_APPLIED_MARKER, KEY_FAILED_MARKER } from "../../../lib/grafana-host/key-rotation.js";
import { getInstance, listAllInstances, saveInstance } from "../../../lib/instances/store.js";
import { KEY_NAME_PREFIX } from "../../../lib/provisioning/instance-key.js";
import { runReconciler } from "../../../lib/reconciler/index.js";
import { keySweepCandidates, KEY_SWEEP_PROJECTS_PER_RUN } from "../../../lib/reconciler/keys.js";
import type { Instance } from "../../../lib/instances/model.js";
import type { SimApiKey, SimProject } from "../../../local/simulators/supabase.js";
import { TestClient } from "../../helpers/client.js";
import {
  allTableRows,
  provisioningTestDefinitions,
  startProvisioningEnv,
  type OrgEnv,
  type ProvisioningEnv,
  expectNoKeyMaterial,
} from "./harness.js";

let env: ProvisioningEnv;
/** Every org of these tests, for the final look at what was logged. */
const orgs: OrgEnv[] = [];
function track(o: OrgEnv): OrgEnv {
  orgs.push(o);
  return o;
}

/** What the Grafana hosts hold, per VM, as their run commands left it. */
const hostKeys = new Map<string, string>();
/** The next rotation's first scrape fails on the host. */
let failNextScrape = false;
/** Supafana keys of the project while the host ran its check. */
let keysDuringCheck: string[] = [];

function decodeKey(script: readonly string[]): string | undefined {
  const start = script.findIndex((l) => l.includes("<<'SUPAFANA_KEY'"));
  const payload = start >= 0 ? script[start + 1] : undefined;
  return payload ? Buffer.from(payload, "base64").toString("utf8") : undefined;
}

const allProjects = (): SimProject[] => env.supabase.orgs.flatMap((o) => o.projects);

beforeAll(async () => {
  env = await startProvisioningEnv({
    // The Grafana VMs: a run command carrying a key "scrapes" Supabase with it (up when Supabase
    // knows it as a live key); anything else goes to the gateway stand-in.
    runCommandExecutor: (vmName, script, parameters) => {
      const key = decodeKey(script);
      if (key === undefined) {
        const gateway = env.platform.gateway;
        if (!gateway) throw new Error("no gateway stand-in");
        return gateway.executor(vmName, script, parameters);
      }
      const project = allProjects().find((p) => p.createdKeys?.some((k) => k.apiKey === key));
      keysDuringCheck = (project?.createdKeys ?? [])
        .filter((k) => k.name.startsWith(KEY_NAME_PREFIX))
        .map((k) => k.id);
      if (!project || failNextScrape) {
        failNextScrape = false;
        return Promise.resolve({
          exitCode: 1,
          stdout: `${KEY_FAILED_MARKER} the first scrape of the Supabase metrics with the new key failed (up == 0); the previous key is back\n`,
          stderr: "",
        });
      }
      hostKeys.set(vmName, key);
      return Promise.resolve({ exitCode: 0, stdout: `${KEY_APPLIED_MARKER}\n`, stderr: "" });
    },
  });
});
afterAll(async () => {
  await env.close();
});

const projectOf = (o: OrgEnv, ref: string): SimProject => {
  const p = o.org.projects.find((x) => x.ref === ref);
  if (!p) throw new Error(`no project ${ref}`);
  return p;
};
const supafanaKeys = (o: OrgEnv, ref: string): SimApiKey[] =>
  (projectOf(o, ref).createdKeys ?? []).filter((k) => k.name.startsWith(KEY_NAME_PREFIX));
const reconcile = (o: OrgEnv) => runReconciler(o.services, o.client.context("reconciler"));

describe("key rotation", () => {
  it("when an Owner rotates the key, then the host gets a new key, the old one is deleted only after the host's check passed, and no key is stored", async () => {
    const o = track(await env.newOrg(1));
    const ref = o.refs[0] ?? "";
    const before = await o.provision(ref);
    const [old] = supafanaKeys(o, ref);
    expect(old?.id).toBe(before.keyId);

    const res = await o.client.post(`/api/projects/${ref}/grafana/rotate-key`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ keyKind: "dedicated", state: "Running" });

    const after = await o.instance(ref);
    const keys = supafanaKeys(o, ref);
    expect(keys).toHaveLength(1);
    const [fresh] = keys;
    expect(fresh?.id).not.toBe(old?.id);
    expect(after?.keyId).toBe(fresh?.id);
    expect(after?.pendingKeyId).toBeUndefined();
    expect(after?.keyRotatedAt?.getTime()).toBeGreaterThanOrEqual(
      before.keyRotatedAt?.getTime() ?? 0,
    );
    // While the host checked, both keys existed: no gap.
    expect(keysDuringCheck.sort()).toEqual([old?.id, fresh?.id].sort());
    expect([...hostKeys.values()]).toContain(fresh?.apiKey);

    const rows = await allTableRows(env.services);
    const logs = JSON.stringify(o.client.logs);
    for (const k of [old?.apiKey ?? "-", fresh?.apiKey ?? "-"]) {
      expect(rows.includes(k), "key in table rows").toBe(false);
      expect(logs.includes(k), "key in logs").toBe(false);
    }
  });

  it("when the host's check fails, then the old key stays, the new one is deleted and the error is reported", async () => {
    const o = track(await env.newOrg(1));
    const ref = o.refs[0] ?? "";
    const before = await o.provision(ref);
    failNextScrape = true;
    const res = await o.client.post(`/api/projects/${ref}/grafana/rotate-key`);
    expect(res.status).toBe(502);
    expect(res.body).toMatchObject({
      error: { code: "key_rotation_failed", message: expect.stringContaining("up == 0") as string },
    });
    const after = await o.instance(ref);
    expect(after?.keyId).toBe(before.keyId);
    expect(after?.pendingKeyId).toBeUndefined();
    expect(supafanaKeys(o, ref).map((k) => k.id)).toEqual([before.keyId]);
  });

  it("when a Developer asks to rotate, then it is refused with 403", async () => {
    const o = track(await env.newOrg(1));
    const ref = o.refs[0] ?? "";
    await o.provision(ref);
    const { session, cookie } = await startSession(env.services, o.slug);
    await bindUser(env.services, session.id, { id: "dev-user", name: "grace", role: "Developer" });
    const dev = new TestClient(provisioningTestDefinitions, o.services);
    dev.cookies.set(SESSION_COOKIE, cookie.value);
    const res = await dev.post(`/api/projects/${ref}/grafana/rotate-key`);
    expect(res.status).toBe(403);
    expect(supafanaKeys(o, ref)).toHaveLength(1);
  });

  it("when the instance uses the legacy key, then rotation answers 409", async () => {
    const o = track(await env.newOrg(1));
    const ref = o.refs[0] ?? "";
    env.supabase.setGrantScopes(o.slug, ["secrets:read"]);
    await o.provision(ref);
    const res = await o.client.post(`/api/projects/${ref}/grafana/rotate-key`);
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ error: { code: "key_rotation_unavailable" } });
  });

  it("when a key is older than KEY_ROTATION_DAYS, then the reconciler rotates it", async () => {
    const o = track(await env.newOrg(1));
    const ref = o.refs[0] ?? "";
    const running = await o.provision(ref);
    const stale = new Date(
      env.services.clock.now().getTime() - (env.services.config.KEY_ROTATION_DAYS + 1) * 86_400_000,
    );
    await saveInstance(env.services, { ...running, keyRotatedAt: stale });
    const report = await reconcile(o);
    expect(report.keysRotated).toBe(1);
    const after = await o.instance(ref);
    expect(after?.keyId).not.toBe(running.keyId);
    expect(supafanaKeys(o, ref).map((k) => k.id)).toEqual([after?.keyId]);
  });
});

describe("orphaned keys", () => {
  it("when deprovisioning could not delete the key and a crashed mint left another, then the reconciler deletes both and the row forgets the key", async () => {
    const o = track(await env.newOrg(1));
    const ref = o.refs[0] ?? "";
    const running = await o.provision(ref);
    env.supabase.injectFault({
      status: 500,
      method: "DELETE",
      pathPrefix: `/v1/projects/${ref}/api-keys/`,
      count: 1,
    });
    expect((await o.client.delete(`/api/projects/${ref}/grafana`)).status).toBe(202);
    await o.driver.drain();
    const deleted = await o.instance(ref);
    expect(deleted?.state).toBe("Deleted");
    expect(deleted?.keyId).toBe(running.keyId);
    const longAgo = new Date(Date.now() - 3600_000).toISOString();
    (projectOf(o, ref).createdKeys ??= []).push({
      id: "00000000-0000-4000-8000-00000000000a",
      type: "secret",
      name: `${KEY_NAME_PREFIX}deadbeef`,
      description: null,
      apiKey: "sb_secret_orphanOrphanOrphanOrph_abcdefgh",
      secretJwtTemplate: { role: "service_role" },
      insertedAt: longAgo,
      updatedAt: longAgo,
    });
    expect(supafanaKeys(o, ref)).toHaveLength(2);

    const report = await reconcile(o);
    expect(report.orphanKeysDeleted).toBe(2);
    expect(supafanaKeys(o, ref)).toEqual([]);
    expect((await getInstance(env.services, o.slug, ref))?.keyId).toBeUndefined();
  });

  it("when a live instance's project holds unrecorded keys, then the old one is deleted and the young one left alone", async () => {
    const o = track(await env.newOrg(1));
    const ref = o.refs[0] ?? "";
    const running = await o.provision(ref);
    const stray = (id: string, insertedAt: string, apiKey: string): SimApiKey => ({
      id,
      type: "secret",
      name: `${KEY_NAME_PREFIX}cafebabe`,
      description: null,
      apiKey,
      secretJwtTemplate: { role: "service_role" },
      insertedAt,
      updatedAt: insertedAt,
    });
    (projectOf(o, ref).createdKeys ??= []).push(
      stray(
        "00000000-0000-4000-8000-00000000000b",
        new Date().toISOString(),
        "sb_secret_youngYoungYoungYoungYou_abcdefgh",
      ),
      stray(
        "00000000-0000-4000-8000-00000000000c",
        new Date(Date.now() - 3600_000).toISOString(),
        "sb_secret_staleStaleStaleStaleSta_abcdefgh",
      ),
    );
    const candidates = keySweepCandidates(
      await listAllInstances(env.services),
      env.services.clock.now(),
    );
    expect(candidates.map((i) => i.ref)).toContain(ref);
    await reconcile(o);
    expect(
      supafanaKeys(o, ref)
        .map((k) => k.id)
        .sort(),
    ).toEqual([running.keyId, "00000000-0000-4000-8000-00000000000b"].sort());
  });

  it("the sweep window is bounded and visits every settled instance within a few runs", () => {
    const base = { operation: "provision", step: "done", attempts: 0, plan: "trial" } as const;
    const at = new Date(0);
    const instances: Instance[] = Array.from({ length: 25 }, (_, n) => ({
      ...base,
      org: "o",
      ref: `r${String(n).padStart(2, "0")}`,
      state: n === 7 ? "Deploying" : "Running",
      operationId: `op${n}`,
      operationStartedAt: at,
      createdAt: at,
      updatedAt: at,
    }));
    const seen = new Set<string>();
    for (let run = 0; run < 3; run++) {
      const picked = keySweepCandidates(instances, new Date(run * 5 * 60_000));
      expect(picked.length).toBeLessThanOrEqual(KEY_SWEEP_PROJECTS_PER_RUN);
      for (const i of picked) seen.add(i.ref);
    }
    expect(seen.has("r07")).toBe(false);
    expect(seen.size).toBe(24);
  });
});

describe("after these tests", () => {
  it("no table row and no log line holds any key value, minted, rotated out or deleted", async () => {
    await expectNoKeyMaterial(env, orgs);
  });
});
