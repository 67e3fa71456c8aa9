import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { KEY_NAME_PREFIX, keyNameFor } from "../../../lib/provisioning/instance-key.js";
import type { ProvisioningMessage } from "../../../lib/provisioning/messages.js";
import type { SimApiKey, SimProject } from "../../../local/simulators/supabase.js";
import { serviceKeyOf } from "../../helpers/org.js";
import {
  allTableRows,
  startProvisioningEnv,
  type CrashPoint,
  type Delivery,
  type OrgEnv,
  type ProvisioningEnv,
  expectNoKeyMaterial,
} from "./harness.js";

let env: ProvisioningEnv;
/** Every org of these tests, for the final look at what was logged. */
const orgs: OrgEnv[] = [];

beforeAll(async () => {
  env = await startProvisioningEnv();
});
afterAll(async () => {
  await env.close();
});

function track(o: OrgEnv): OrgEnv {
  orgs.push(o);
  return o;
}

const projectOf = (o: OrgEnv, ref: string): SimProject => {
  const p = o.org.projects.find((x) => x.ref === ref);
  if (!p) throw new Error(`no project ${ref}`);
  return p;
};
const supafanaKeys = (o: OrgEnv, ref: string): SimApiKey[] =>
  (projectOf(o, ref).createdKeys ?? []).filter((k) => k.name.startsWith(KEY_NAME_PREFIX));

/** The @secure() cloudInit value of the project's deployment PUT(s). */
function cloudInitsOf(ref: string): string[] {
  return env.arm
    .requests()
    .filter((r) => r.method === "PUT" && r.path.includes(`/deployments/grafana-${ref}`))
    .map((r) => {
      const body = r.body as { properties?: { parameters?: { cloudInit?: { value?: string } } } };
      return body.properties?.parameters?.cloudInit?.value ?? "";
    });
}

const b64 = (v: string) => Buffer.from(v, "utf8").toString("base64");
const stepOf = (d: Delivery) =>
  d.queue === "provisioning" ? (d.body as ProvisioningMessage).step : undefined;

describe("a dedicated Supabase key per instance", () => {
  it("when an instance is provisioned, then exactly one secret key is minted for it, the host document carries it and never the service key, and the row holds only its id", async () => {
    const o = track(await env.newOrg(1));
    const ref = o.refs[0] ?? "";
    const instance = await o.provision(ref);
    expect(instance.state).toBe("Running");

    const keys = supafanaKeys(o, ref);
    expect(keys).toHaveLength(1);
    const key = keys[0];
    if (!key) throw new Error("no key");
    expect(key.type).toBe("secret");
    expect(key.name).toBe(keyNameFor(instance.operationId));
    expect(key.description).toContain("deleting it stops the dashboard");
    expect(instance.keyId).toBe(key.id);
    expect(instance.keyKind).toBe("dedicated");
    expect(instance.keyRotatedAt).toBeInstanceOf(Date);

    const [cloudInit, ...more] = cloudInitsOf(ref);
    expect(more).toEqual([]);
    expect(cloudInit).toContain(b64(key.apiKey));
    expect(cloudInit).not.toContain(b64(serviceKeyOf(o.org, ref)));

    const view = (await o.client.get(`/api/projects/${ref}/grafana`)).body;
    expect(view).toMatchObject({ keyKind: "dedicated", keyHint: null });

    const rows = await allTableRows(env.services);
    const logs = JSON.stringify(o.client.logs);
    for (const form of [key.apiKey, b64(key.apiKey)]) {
      expect(rows.includes(form), "key in table rows").toBe(false);
      expect(logs.includes(form), "key in logs").toBe(false);
    }
    expect(rows).toContain(key.id);
  });

  it("when the instance is deprovisioned, then its key is deleted with a reason and the row forgets it", async () => {
    const o = track(await env.newOrg(1));
    const ref = o.refs[0] ?? "";
    await o.provision(ref);
    const [key] = supafanaKeys(o, ref);
    expect(key).toBeDefined();
    env.supabase.resetStats();
    expect((await o.client.delete(`/api/projects/${ref}/grafana`)).status).toBe(202);
    await o.driver.drain();
    const after = await o.instance(ref);
    expect(after?.state).toBe("Deleted");
    expect(supafanaKeys(o, ref)).toEqual([]);
    expect(env.supabase.stats().byRoute["DELETE /v1/projects/{ref}/api-keys/{id}"]).toBe(1);
    expect(projectOf(o, ref).deletedKeys).toEqual([
      expect.objectContaining({ id: key?.id, reason: "supafana_instance_deleted" }),
    ]);
    expect(after?.keyId).toBeUndefined();
  });

  it("when the grant lacks secrets:write, then the legacy key is used and the instance says legacy with a hint", async () => {
    const o = track(await env.newOrg(1));
    const ref = o.refs[0] ?? "";
    env.supabase.setGrantScopes(o.slug, ["secrets:read"]);
    const instance = await o.provision(ref);
    expect(instance.state).toBe("Running");
    expect(instance.keyKind).toBe("legacy");
    expect(instance.keyId).toBeUndefined();
    expect(supafanaKeys(o, ref)).toEqual([]);
    expect(cloudInitsOf(ref)[0]).toContain(b64(serviceKeyOf(o.org, ref)));
    const view = (await o.client.get(`/api/projects/${ref}/grafana`)).body as {
      keyKind: string;
      keyHint: string;
    };
    expect(view.keyKind).toBe("legacy");
    expect(view.keyHint).toContain("secrets:write");
  });

  it("when the project has no new-style keys, then the legacy key is used", async () => {
    const o = track(await env.newOrg(1));
    const ref = o.refs[0] ?? "";
    projectOf(o, ref).legacyOnly = true;
    projectOf(o, ref).serviceKey = undefined;
    env.supabase.resetStats();
    const instance = await o.provision(ref);
    expect(instance.state).toBe("Running");
    expect(instance.keyKind).toBe("legacy");
    expect(supafanaKeys(o, ref)).toEqual([]);
    expect(env.supabase.stats().byRoute["POST /v1/projects/{ref}/api-keys"] ?? 0).toBe(0);
  });
});

describe("exactly one key under crashes and redelivery of the deploy step", () => {
  const POINTS: CrashPoint[] = ["first-write", "persist-outcome", "send", "complete"];
  for (const point of POINTS) {
    it(`when the consumer crashes at ${point} of deploy, then one key remains and it is the host's`, async () => {
      const o = track(await env.newOrg(1));
      const ref = o.refs[0] ?? "";
      o.driver.crashOnce(point, (d) => stepOf(d) === "deploy");
      const instance = await o.provision(ref);
      expect(o.driver.crashPending).toBe(false);
      expect(instance.state).toBe("Running");
      const keys = supafanaKeys(o, ref);
      expect(keys).toHaveLength(1);
      expect(instance.keyId).toBe(keys[0]?.id);
      expect(cloudInitsOf(ref)).toHaveLength(1);
      expect(cloudInitsOf(ref)[0]).toContain(b64(keys[0]?.apiKey ?? "-"));
    });
  }

  it("when the key is minted but the answer is lost, then the redelivery reuses it", async () => {
    const o = track(await env.newOrg(1));
    const ref = o.refs[0] ?? "";
    env.supabase.injectFault({
      status: 500,
      pathPrefix: `/v1/projects/${ref}/api-keys`,
      method: "POST",
      afterHandling: true,
    });
    const instance = await o.provision(ref);
    expect(instance.state).toBe("Running");
    const keys = supafanaKeys(o, ref);
    expect(keys).toHaveLength(1);
    expect(instance.keyId).toBe(keys[0]?.id);
  });

  it("when the deployment PUT fails after the key was minted, then the retry reuses that key", async () => {
    const o = track(await env.newOrg(1));
    const ref = o.refs[0] ?? "";
    env.arm.injectFault({
      status: 500,
      method: "PUT",
      pathIncludes: `/deployments/grafana-${ref}`,
    });
    const instance = await o.provision(ref);
    expect(instance.state).toBe("Running");
    const keys = supafanaKeys(o, ref);
    expect(keys).toHaveLength(1);
    expect(instance.keyId).toBe(keys[0]?.id);
    // The failed PUT and the retry carried the same key.
    const inits = cloudInitsOf(ref);
    expect(inits.length).toBeGreaterThanOrEqual(2);
    for (const ci of inits) expect(ci).toContain(b64(keys[0]?.apiKey ?? "-"));
  });

  it("when two deliveries of deploy each mint a key, then the one the host does not hold is deleted", async () => {
    const o = track(await env.newOrg(1));
    const ref = o.refs[0] ?? "";
    const before = await (async () => {
      await o.client.put(`/api/projects/${ref}/grafana`);
      return o.instance(ref);
    })();
    // Two deliveries that each minted under this operation's name before either wrote the row.
    const at = env.services.clock.now().toISOString();
    const stray = (id: string, apiKey: string): SimApiKey => ({
      id,
      type: "secret",
      name: keyNameFor(before?.operationId ?? ""),
      description: null,
      apiKey,
      secretJwtTemplate: { role: "service_role" },
      insertedAt: at,
      updatedAt: at,
    });
    projectOf(o, ref).createdKeys = [
      stray("00000000-0000-4000-8000-000000000002", "sb_secret_otherOtherOtherOtherOth_abcdefgh"),
      stray("00000000-0000-4000-8000-000000000001", "sb_secret_strayStrayStrayStrayStr_abcdefgh"),
    ];
    await o.driver.drain();
    const instance = await o.instance(ref);
    expect(instance?.state).toBe("Running");
    const keys = supafanaKeys(o, ref);
    expect(keys.map((k) => k.id)).toEqual([instance?.keyId]);
  });
});

describe("after these tests", () => {
  it("no table row and no log line holds any key value, minted, deleted or the project's own", async () => {
    await expectNoKeyMaterial(env, orgs);
  });
});
