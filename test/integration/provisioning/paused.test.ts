import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { getProjectRef } from "../../../lib/instances/project-refs.js";
import type { ProvisioningMessage } from "../../../lib/provisioning/messages.js";
import { deploymentsOf, startProvisioningEnv, type ProvisioningEnv } from "./harness.js";

let env: ProvisioningEnv;

beforeAll(async () => {
  env = await startProvisioningEnv();
});
afterAll(async () => {
  await env.close();
});

describe("a paused Supabase project", () => {
  it("when the project is paused (INACTIVE), then PUT answers 409 project_paused and nothing is written or sent", async () => {
    const o = await env.newOrg(2);
    const ref = o.refs[0] ?? "";
    const project = o.org.projects.find((p) => p.ref === ref);
    if (!project) throw new Error("no project");
    project.status = "INACTIVE";
    const armBefore = env.arm.requests().length;

    const res = await o.client.put(`/api/projects/${ref}/grafana`);
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("project_paused");
    expect(res.body.error.message).toMatch(/restore the project in Supabase first/);

    expect(await o.instance(ref)).toBeUndefined();
    expect(await getProjectRef(env.services, ref)).toBeUndefined();
    expect(o.driver.sent).toEqual([]);
    expect(env.arm.requests().length).toBe(armBefore);

    // Restored in Supabase (the cached list still says paused): the PUT goes through.
    project.status = "ACTIVE_HEALTHY";
    const again = await o.client.put(`/api/projects/${ref}/grafana`);
    expect(again.status, JSON.stringify(again.body)).toBe(202);
    expect(again.body).toMatchObject({ ref, state: "Requested" });
  });

  it("when the project is pausing or removed, then PUT is refused the same way", async () => {
    const o = await env.newOrg(2);
    const statuses = ["PAUSING", "REMOVED"];
    o.org.projects.forEach((p, i) => (p.status = statuses[i] ?? p.status));
    for (const [i, status] of statuses.entries()) {
      const ref = o.refs[i] ?? "";
      const res = await o.client.put(`/api/projects/${ref}/grafana`);
      expect(res.status, status).toBe(409);
      expect(res.body.error.code).toBe("project_paused");
      expect(res.body.error.message).toContain(status);
      expect(await o.instance(ref)).toBeUndefined();
    }
    expect(o.driver.sent).toEqual([]);
  });

  it("when the project is paused after the PUT, then Supabase's 400 ends the operation Failed after one attempt", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    const put = await o.client.put(`/api/projects/${ref}/grafana`);
    expect(put.status).toBe(202);
    const project = o.org.projects.find((p) => p.ref === ref);
    if (!project) throw new Error("no project");
    project.status = "INACTIVE";

    await o.driver.drain();
    const failed = await o.instance(ref);
    expect(failed?.state).toBe("Failed");
    expect(failed?.failures).toBe(0);
    expect(failed?.lastError).toBe(
      "Supabase cannot reach this project's services (is it paused? restore it in Supabase, then provision again).",
    );
    // No retry was scheduled: every provisioning message was a first attempt.
    const provisioning = o.driver.sent.filter((d) => d.queue === "provisioning");
    expect(provisioning.length).toBeGreaterThan(0);
    expect(provisioning.every((d) => (d.body as ProvisioningMessage).attempt === 0)).toBe(true);
    expect(deploymentsOf(env.arm, ref)).toEqual([]);

    const view = await o.client.get(`/api/projects/${ref}/grafana`);
    expect(view.body).toMatchObject({ state: "Failed", lastError: failed?.lastError });
  });
});
