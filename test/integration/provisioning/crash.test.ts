import { afterAll, beforeAll, describe, expect, it } from "vitest";

import type { ProvisioningMessage } from "../../../lib/provisioning/messages.js";
import type { ArmSimulator } from "../../../local/simulators/arm.js";
import {
  deploymentsOf,
  dnsOf,
  resourcesOf,
  startProvisioningEnv,
  type CrashPoint,
  type Delivery,
  stepLogs,
  type ProvisioningEnv,
  expectNothingLeft,
} from "./harness.js";

let env: ProvisioningEnv;

beforeAll(async () => {
  env = await startProvisioningEnv();
});
afterAll(async () => {
  await env.close();
});

const POINTS: CrashPoint[] = ["first-write", "persist-outcome", "send", "complete"];
const stepOf = (d: Delivery) =>
  d.queue === "provisioning" ? (d.body as ProvisioningMessage).step : undefined;

/** ARM writes for one project: deployment PUTs and DNS record PUTs. */
function writesFor(arm: ArmSimulator, ref: string) {
  const reqs = arm.requests().filter((r) => r.path.includes(ref));
  return {
    deploymentPuts: reqs.filter((r) => r.method === "PUT" && r.path.includes("/deployments/"))
      .length,
    dnsPuts: reqs.filter((r) => r.method === "PUT" && r.path.toLowerCase().includes("/dnszones/"))
      .length,
  };
}

describe("a crash at any point of a provisioning step, then the redelivery", () => {
  for (const step of ["deploy", "await-deployment", "configure", "verify"]) {
    // Only deploy writes the row before its side effect; elsewhere the first write is the outcome.
    for (const point of POINTS.filter((p) => step === "deploy" || p !== "first-write")) {
      it(`when the consumer crashes at ${point} of ${step}, then the instance still ends Running with one deployment and one DNS record`, async () => {
        const o = await env.newOrg(1);
        const ref = o.refs[0] ?? "";
        o.driver.crashOnce(point, (d) => stepOf(d) === step);
        const instance = await o.provision(ref);
        expect(o.driver.crashPending).toBe(false);
        expect(instance.state).toBe("Running");
        expect(deploymentsOf(env.arm, ref)).toHaveLength(1);
        expect(deploymentsOf(env.arm, ref)[0]?.puts).toBe(1);
        expect(dnsOf(env.arm, ref)).toHaveLength(1);
        expect(writesFor(env.arm, ref)).toEqual({ deploymentPuts: 1, dnsPuts: 1 });
        expect(
          resourcesOf(env.arm, ref).filter((r) => r.type.endsWith("virtualMachines")),
        ).toHaveLength(1);
        expect(o.driver.deadLettered).toEqual([]);
      });
    }
  }
});

describe("a crash at any point of a deprovisioning step, then the redelivery", () => {
  for (const step of ["drain", "delete-resources"]) {
    // With instant deletes, delete-resources finishes in one pass and sends no further message.
    for (const point of POINTS.filter(
      (p) => p !== "first-write" && !(step === "delete-resources" && p === "send"),
    )) {
      it(`when the consumer crashes at ${point} of ${step}, then the instance still ends Deleted with nothing left`, async () => {
        const o = await env.newOrg(1);
        const ref = o.refs[0] ?? "";
        await o.provision(ref);
        o.driver.crashOnce(point, (d) => stepOf(d) === step);
        expect((await o.client.delete(`/api/projects/${ref}/grafana`)).status).toBe(202);
        await o.driver.drain();
        expect(o.driver.crashPending).toBe(false);
        expect((await o.instance(ref))?.state).toBe("Deleted");
        expectNothingLeft(env.arm, ref);
      });
    }
  }
});

describe("duplicates", () => {
  it("when every message is delivered twice and the queue does not drop duplicates, then one deployment and one DNS record are made", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    o.driver.dedupe = false;
    o.driver.duplicateAll = true;
    const instance = await o.provision(ref);
    expect(instance.state).toBe("Running");
    expect(writesFor(env.arm, ref)).toEqual({ deploymentPuts: 1, dnsPuts: 1 });
    expect(deploymentsOf(env.arm, ref)).toHaveLength(1);
    expect(dnsOf(env.arm, ref)).toHaveLength(1);
    // Each step ran its side effects once; the copies were recognised as stale.
    const handled = stepLogs(o.client, instance.operationId);
    expect(handled.filter((f) => f.outcome === "stale").length).toBeGreaterThan(0);
    expect(handled.filter((f) => f.outcome === "running")).toHaveLength(1);
  });

  it("when the same PUT message id is sent twice, then the queue's duplicate detection keeps one", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    await o.client.put(`/api/projects/${ref}/grafana`);
    const [first] = o.driver.pending;
    if (!first) throw new Error("no message");
    await o.driver.bus.send("provisioning", {
      body: first.body,
      messageId: first.messageId,
      sessionId: ref,
    });
    expect(o.driver.pending).toHaveLength(1);
    await o.driver.drain();
    expect((await o.instance(ref))?.state).toBe("Running");
    expect(deploymentsOf(env.arm, ref)[0]?.puts).toBe(1);
  });
});
