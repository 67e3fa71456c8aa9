import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  deploymentsOf,
  dnsOf,
  resourcesOf,
  startProvisioningEnv,
  type OrgEnv,
  type ProvisioningEnv,
  expectNothingLeft,
} from "./harness.js";
import { ManualClock } from "../../helpers/clock.js";

let env: ProvisioningEnv;

beforeAll(async () => {
  env = await startProvisioningEnv();
});
afterAll(async () => {
  await env.close();
});

/** The table and the cloud agree: Deleted has nothing anywhere, Running has one of everything. */
async function expectConsistent(o: OrgEnv, ref: string): Promise<string> {
  const i = await o.instance(ref);
  const host = `${ref}.${env.services.config.GRAFANA_DOMAIN}`;
  expect(["Running", "Deleted"]).toContain(i?.state);
  if (i?.state === "Deleted") {
    expectNothingLeft(env.arm, ref);
    expect(env.platform.gateway?.routes().has(host)).toBe(false);
  } else {
    expect(resourcesOf(env.arm, ref)).toHaveLength(4);
    expect(deploymentsOf(env.arm, ref)).toHaveLength(1);
    expect(dnsOf(env.arm, ref)).toHaveLength(1);
    expect(env.platform.gateway?.routes().get(host)).toBe(`${i?.privateIp ?? ""}:3000`);
  }
  return i?.state ?? "";
}

describe("a PUT racing a DELETE", () => {
  for (const steps of [0, 1, 2, 3, 4, 5]) {
    it(`when DELETE arrives after ${steps} provisioning deliveries, then everything is deleted and nothing is left`, async () => {
      const o = await env.newOrg(1);
      const ref = o.refs[0] ?? "";
      expect((await o.client.put(`/api/projects/${ref}/grafana`)).status).toBe(202);
      for (let n = 0; n < steps; n++) await o.driver.step();
      const del = await o.client.delete(`/api/projects/${ref}/grafana`);
      expect(del.status).toBe(202);
      expect(del.body.state).toBe("Deleting");
      await o.driver.drain();
      expect(await expectConsistent(o, ref)).toBe("Deleted");
    });
  }

  it("when PUT comes while the instance is being deleted, then it is refused with 409 and the deletion completes", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    await o.provision(ref);
    await o.client.delete(`/api/projects/${ref}/grafana`);
    const put = await o.client.put(`/api/projects/${ref}/grafana`);
    expect(put.status).toBe(409);
    expect(put.body.error.code).toBe("instance_deleting");
    await o.driver.drain();
    expect(await expectConsistent(o, ref)).toBe("Deleted");
  });

  for (const start of ["absent", "Running", "Deleted"] as const) {
    it(`when PUT and DELETE arrive at the same time on a ${start} instance, then the end state is consistent with Azure`, async () => {
      const o = await env.newOrg(1);
      const ref = o.refs[0] ?? "";
      if (start !== "absent") await o.provision(ref);
      if (start === "Deleted") {
        await o.client.delete(`/api/projects/${ref}/grafana`);
        await o.driver.drain();
      }
      const [put, del] = await Promise.all([
        o.client.put(`/api/projects/${ref}/grafana`),
        o.client.delete(`/api/projects/${ref}/grafana`),
      ]);
      expect([202, 409]).toContain(put.status);
      expect([202, 404]).toContain(del.status);
      await o.driver.drain();
      const state = await expectConsistent(o, ref);
      // Whatever the order, one operation is current and it finished.
      const i = await o.instance(ref);
      expect(i?.operation).toBe(state === "Deleted" ? "deprovision" : "provision");
    });
  }
});

describe("a DELETE while the ARM deployment is still running", () => {
  it("when the deployment is still running, then deprovisioning waits for it and then removes everything", async () => {
    // ARM's time stands still until the test moves it: the deployment runs exactly as long as
    // the test says, however slowly the steps go.
    const clock = new ManualClock();
    const slow = await startProvisioningEnv({ deploymentDelayMs: 400, clock });
    try {
      const o = await slow.newOrg(1);
      const ref = o.refs[0] ?? "";
      await o.client.put(`/api/projects/${ref}/grafana`);
      await o.driver.step(); // deploy: the PUT is accepted, the deployment runs for 400 ms
      expect(deploymentsOf(slow.arm, ref)[0]?.provisioningState).toMatch(/Accepted|Running/);
      await o.client.delete(`/api/projects/${ref}/grafana`);
      const stillRunning = () =>
        o.client.logs
          .map((l) => l.args[0])
          .filter((m) => typeof m === "string" && m.includes("still running")).length;
      // Deprovisioning reaches the sweep and waits while the deployment runs.
      for (let n = 0; n < 10 && stillRunning() < 2; n++) await o.driver.step();
      expect(stillRunning()).toBeGreaterThanOrEqual(2);
      expect(deploymentsOf(slow.arm, ref)[0]?.provisioningState).toBe("Running");
      expect(resourcesOf(slow.arm, ref)).toEqual([]);
      clock.advance(400);
      await o.driver.drain();
      expect((await o.instance(ref))?.state).toBe("Deleted");
      expect(resourcesOf(slow.arm, ref)).toEqual([]);
      expect(deploymentsOf(slow.arm, ref)).toEqual([]);
    } finally {
      await slow.close();
    }
  });
});
