import { randomUUID } from "node:crypto";

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import { createInstance } from "../../../lib/instances/store.js";
import type { Instance } from "../../../lib/instances/model.js";
import {
  addOrg,
  connect,
  type ConnectPlatform,
  projectsOf,
  startConnectPlatform,
} from "./fixture.js";

let t: ConnectPlatform;

beforeAll(async () => {
  t = await startConnectPlatform();
});
afterAll(async () => {
  await t.platform.close();
});
afterEach(() => {
  t.clock.reset();
});

function instance(org: string, ref: string, overrides: Partial<Instance> = {}): Instance {
  const now = t.clock.now();
  return {
    org,
    ref,
    state: "Running",
    operationId: randomUUID(),
    operation: "provision",
    step: "done",
    attempts: 0,
    operationStartedAt: now,
    plan: "trial",
    trialEndsAt: new Date(now.getTime() + 72 * 3600_000),
    url: `https://${ref}.${t.services.config.GRAFANA_DOMAIN}`,
    passwordSecret: "should-never-show",
    createdAt: now,
    updatedAt: now,
    readyAt: now,
    ...overrides,
  };
}

describe("GET /api/projects", () => {
  it("when the org has projects, some with instances, then each comes with Supabase's status and region and its instance", async () => {
    const org = addOrg(t.supabase, { projects: 3 });
    const [p1, p2, p3] = org.projects;
    await createInstance(t.services, instance(org.slug, p1!.ref));
    await createInstance(
      t.services,
      instance(org.slug, p2!.ref, {
        state: "Failed",
        lastError: "deployment failed",
        url: undefined,
        readyAt: undefined,
      }),
    );
    const client = t.client();
    await connect(client, t.supabase, org.slug);

    const res = await client.get("/api/projects");
    expect(res.status).toBe(200);
    const byRef = new Map(projectsOf(res).map((p) => [p.ref, p]));
    expect(byRef.size).toBe(3);
    expect(byRef.get(p1!.ref)).toMatchObject({
      ref: p1!.ref,
      name: p1!.name,
      region: p1!.region,
      status: "ACTIVE_HEALTHY",
      instance: {
        ref: p1!.ref,
        state: "Running",
        plan: "trial",
        url: `https://${p1!.ref}.${t.services.config.GRAFANA_DOMAIN}`,
      },
    });
    expect(byRef.get(p2!.ref)).toMatchObject({
      instance: { state: "Failed", lastError: "deployment failed", url: null },
    });
    expect(byRef.get(p3!.ref)).toMatchObject({ status: "INACTIVE", instance: null });
    expect(res.text).not.toContain("should-never-show");
  });

  it("when another org has an instance, then it never shows in this org's list", async () => {
    const a = addOrg(t.supabase);
    const b = addOrg(t.supabase);
    await createInstance(t.services, instance(a.slug, a.projects[0]!.ref));
    const clientB = t.client();
    await connect(clientB, t.supabase, b.slug);
    const res = await clientB.get("/api/projects");
    expect(projectsOf(res).every((p) => p.instance === null)).toBe(true);
    expect(res.text).not.toContain(a.projects[0]!.ref);
  });

  it("when a page loads many times, then Supabase is asked at most once per cache period", async () => {
    const org = addOrg(t.supabase, { projects: 5 });
    const client = t.client();
    await connect(client, t.supabase, org.slug);
    const calls = t.supabase.stats().managementCalls;
    for (let i = 0; i < 20; i++) {
      const before = t.supabase.stats().managementCalls;
      await Promise.all([client.get("/api/me"), client.get("/api/projects")]);
      expect(t.supabase.stats().managementCalls - before).toBeLessThanOrEqual(1);
    }
    expect(t.supabase.stats().managementCalls - calls).toBe(1);
  });

  it("when there is no session or a forged cookie, then it is 401", async () => {
    expect((await t.client().get("/api/projects")).status).toBe(401);
    const forged = await t.client().get("/api/projects", {
      headers: { cookie: "__Host-supafana_session=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.AAAA" },
    });
    expect(forged.status).toBe(401);
  });
});
