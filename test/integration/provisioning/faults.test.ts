import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { getInstance, saveInstance } from "../../../lib/instances/store.js";
import { handleProvisioningDeadLetter } from "../../../lib/provisioning/engine.js";
import type { ProvisioningMessage } from "../../../lib/provisioning/messages.js";
import type { ArmFault } from "../../../local/simulators/arm.js";
import {
  deploymentsOf,
  dnsOf,
  resourcesOf,
  startProvisioningEnv,
  type Delivery,
  type ProvisioningEnv,
  expectNothingLeft,
} from "./harness.js";
import { parseEvent } from "../../../lib/telemetry.js";

let env: ProvisioningEnv;

beforeAll(async () => {
  env = await startProvisioningEnv();
});
afterAll(async () => {
  await env.close();
});

interface Call {
  name: string;
  method: string;
  path: (ref: string) => string;
}

const PROVISION_CALLS: Call[] = [
  { name: "GET deployment", method: "GET", path: (ref) => `/deployments/grafana-${ref}` },
  { name: "PUT deployment", method: "PUT", path: (ref) => `/deployments/grafana-${ref}` },
  { name: "GET VM", method: "GET", path: (ref) => `/virtualMachines/grafana-${ref}` },
  { name: "GET NIC", method: "GET", path: (ref) => `/networkInterfaces/grafana-${ref}` },
  { name: "GET DNS record", method: "GET", path: (ref) => `/A/${ref}` },
  { name: "PUT DNS record", method: "PUT", path: (ref) => `/A/${ref}` },
  { name: "POST gateway run command", method: "POST", path: () => "/runCommand" },
];

const DEPROVISION_CALLS: Call[] = [
  { name: "DELETE DNS record", method: "DELETE", path: (ref) => `/A/${ref}` },
  { name: "GET tagged resources", method: "GET", path: () => "/resources" },
  { name: "DELETE VM", method: "DELETE", path: (ref) => `/virtualMachines/grafana-${ref}` },
  { name: "DELETE NIC", method: "DELETE", path: (ref) => `/networkInterfaces/grafana-${ref}` },
  { name: "DELETE data disk", method: "DELETE", path: (ref) => `/disks/grafana-${ref}-data` },
  { name: "DELETE deployment", method: "DELETE", path: (ref) => `/deployments/grafana-${ref}` },
];

/** Each call meets a 500 and then a 429 (Retry-After 2 s); writes also a dropped connection. */
const faultPlans: Array<{
  label: string;
  faults: Array<Omit<ArmFault, "method" | "pathIncludes">>;
  writesOnly?: boolean;
}> = [
  { label: "500 and then 429", faults: [{ status: 500 }, { status: 429, retryAfterSeconds: 2 }] },
  {
    label: "a dropped connection",
    faults: [{ status: "timeout", timeoutMs: 30 }],
    writesOnly: true,
  },
];

/** Retries the code scheduled (provisioning attempts > 0 that followed a failure, gateway retries). */
function retries(sent: Delivery[]): Delivery[] {
  return sent.filter((d) =>
    d.queue === "gateway"
      ? ((d.body as { attempt?: number }).attempt ?? 0) > 0
      : (d.body as ProvisioningMessage).attempt > 0,
  );
}

describe("transient ARM failures while provisioning", () => {
  for (const call of PROVISION_CALLS) {
    for (const plan of faultPlans) {
      if (plan.writesOnly && call.method === "GET") continue;
      it(`when ${call.name} answers ${plan.label}, then the step is retried and the instance ends Running`, async () => {
        const o = await env.newOrg(1);
        const ref = o.refs[0] ?? "";
        for (const fault of plan.faults)
          env.arm.injectFault({ ...fault, method: call.method, pathIncludes: call.path(ref) });
        const instance = await o.provision(ref);
        expect(instance.state).toBe("Running");
        expect(instance.lastError).toBeUndefined();
        const statuses = env.arm
          .requests()
          .filter(
            (r) =>
              r.method === call.method &&
              r.path.toLowerCase().includes(call.path(ref).toLowerCase()),
          )
          .map((r) => r.status);
        for (const fault of plan.faults)
          expect(statuses).toContain(fault.status === "timeout" ? 0 : fault.status);
        expect(deploymentsOf(env.arm, ref)).toHaveLength(1);
        expect(dnsOf(env.arm, ref)).toHaveLength(1);
        const retried = retries(o.driver.sent);
        expect(retried.length).toBeGreaterThanOrEqual(plan.faults.length);
        if (plan.faults.some((f) => f.status === 429)) {
          // Retry-After (2 s) was honoured by the scheduled retry.
          expect(Math.max(...retried.map((d) => d.delayMs))).toBeGreaterThanOrEqual(1900);
        }
      });
    }
  }
});

describe("transient ARM failures while deprovisioning", () => {
  for (const call of DEPROVISION_CALLS) {
    it(`when ${call.name} answers 500 then 429, then deprovisioning still ends Deleted with nothing left`, async () => {
      const o = await env.newOrg(1);
      const ref = o.refs[0] ?? "";
      await o.provision(ref);
      env.arm.injectFault({ status: 500, method: call.method, pathIncludes: call.path(ref) });
      env.arm.injectFault({
        status: 429,
        retryAfterSeconds: 1,
        method: call.method,
        pathIncludes: call.path(ref),
      });
      expect((await o.client.delete(`/api/projects/${ref}/grafana`)).status).toBe(202);
      await o.driver.drain();
      expect((await o.instance(ref))?.state).toBe("Deleted");
      expectNothingLeft(env.arm, ref);
    });
  }
});

describe("failures that end an operation", () => {
  it("when the deployment fails, then the instance is Failed with a readable lastError, and a new PUT cleans up and succeeds", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    env.arm.failNextDeployment(`grafana-${ref}`);
    const failed = await o.provision(ref);
    expect(failed.state).toBe("Failed");
    expect(failed.lastError).toMatch(
      /^The Azure deployment failed: SkuNotAvailable: The requested VM size/,
    );
    const view = (await o.client.get(`/api/projects/${ref}/grafana`)).body;
    expect(view).toMatchObject({ state: "Failed", lastError: failed.lastError, url: null });

    // Leave a partial resource behind, as a half-done deployment would.
    env.arm.plantResource({
      resourceGroup: env.services.config.GRAFANA_RESOURCE_GROUP,
      type: "Microsoft.Network/networkInterfaces",
      name: `grafana-${ref}-nic`,
      tags: { "supafana-ref": ref },
    });
    const retry = await o.client.put(`/api/projects/${ref}/grafana`);
    expect(retry.status).toBe(202);
    expect(retry.body).toMatchObject({ state: "Requested", step: "cleanup", lastError: null });
    await o.driver.drain();
    const after = await o.instance(ref);
    expect(after?.state).toBe("Running");
    expect(after?.operationId).not.toBe(failed.operationId);
    expect(resourcesOf(env.arm, ref)).toHaveLength(4);
    const [deployment] = deploymentsOf(env.arm, ref);
    expect(deployment?.provisioningState).toBe("Succeeded");
    expect(dnsOf(env.arm, ref)).toHaveLength(1);
  });

  it("when ARM keeps failing, then the operation gives up after its attempt budget with the last error", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    const max = env.services.config.PROVISION_MAX_ATTEMPTS;
    env.arm.injectFault({
      status: 500,
      method: "GET",
      pathIncludes: `/virtualMachines/grafana-${ref}`,
      count: max + 5,
    });
    const failed = await o.provision(ref);
    expect(failed.state).toBe("Failed");
    expect(failed.lastError).toBe(
      `Gave up after ${max} failed attempts. Last error: Azure answered 500 InternalServerError: Encountered internal server error. Diagnostic information: simulated fault.`,
    );
    expect(failed.failures).toBe(max - 1);
  });

  it("when an operation outlives its wall-time budget, then its next message ends it Failed", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    await o.client.put(`/api/projects/${ref}/grafana`);
    const i = await getInstance(env.services, o.slug, ref);
    if (!i) throw new Error("no instance");
    const budget = env.services.config.PROVISION_BUDGET_MINUTES;
    await saveInstance(env.services, {
      ...i,
      operationStartedAt: new Date(Date.now() - (budget + 1) * 60_000),
      lastError: "Azure answered 429 TooManyRequests: slow down",
    });
    await o.driver.drain();
    const failed = await o.instance(ref);
    expect(failed?.state).toBe("Failed");
    expect(failed?.lastError).toBe(
      `Provisioning did not finish within ${budget} minutes. Last error: Azure answered 429 TooManyRequests: slow down`,
    );
    expect(deploymentsOf(env.arm, ref)).toEqual([]);
  });

  it("when the org's Supabase grant is revoked, then provisioning fails with a message telling to reconnect", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    const put = await o.client.put(`/api/projects/${ref}/grafana`);
    expect(put.status).toBe(202);
    env.supabase.revokeGrant(o.slug);
    await o.driver.drain();
    const failed = await o.instance(ref);
    expect(failed?.state).toBe("Failed");
    expect(failed?.lastError).toBeTruthy();
    expect(deploymentsOf(env.arm, ref)).toEqual([]);
  });

  it("when Supabase fails transiently while the service key is fetched, then the step is retried", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    await o.client.put(`/api/projects/${ref}/grafana`);
    env.supabase.injectFault({ status: 500, count: 8, pathPrefix: `/v1/projects/${ref}/api-keys` });
    await o.driver.drain();
    expect((await o.instance(ref))?.state).toBe("Running");
    expect(deploymentsOf(env.arm, ref)[0]?.puts).toBe(1);
  });

  it("when a provisioning message is dead-lettered, then its operation ends Failed and an operator error is logged", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    await o.client.put(`/api/projects/${ref}/grafana`);
    const [message] = o.driver.pending;
    if (!message) throw new Error("no message");
    const ctx = await o.client.serviceBusContext("provisioningDeadLetter", {
      body: message.body,
      deliveryCount: 9,
      deadLetterReason: "MaxDeliveryCountExceeded",
    });
    expect(await handleProvisioningDeadLetter(env.services, message.body, ctx)).toBe("failed");
    const failed = await o.instance(ref);
    expect(failed?.state).toBe("Failed");
    expect(failed?.lastError).toMatch(/^Provisioning stopped after repeated internal errors/);
    const errors = o.client.logs.filter(
      (l) => l.level === "error" && l.functionName === "provisioningDeadLetter",
    );
    expect(errors.map((l) => parseEvent(l.args)?.deadLetterReason)).toContain(
      "MaxDeliveryCountExceeded",
    );
    // The original message is now superseded by the terminal state: it completes without work.
    await o.driver.drain();
    expect((await o.instance(ref))?.state).toBe("Failed");
    expect(deploymentsOf(env.arm, ref)).toEqual([]);
    // A second dead letter of the same operation changes nothing.
    expect(await handleProvisioningDeadLetter(env.services, message.body, ctx)).toBe("ignored");
  });

  it("when a handler keeps crashing, then the driver's queue dead-letters it and the instance ends Failed", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    await o.client.put(`/api/projects/${ref}/grafana`);
    const original = o.driver.services.tables;
    let crashes = 0;
    // Every write of the instance row fails in an unexpected way (a bug, not a remote failure).
    (o.driver.services as { tables: typeof original }).tables = {
      ...original,
      client: (name) => {
        const real = original.client(name);
        if (name !== "instances") return real;
        return new Proxy(real, {
          get(target, prop, receiver) {
            if (prop === "updateEntity") {
              return () => {
                crashes += 1;
                return Promise.reject(new TypeError("simulated bug"));
              };
            }
            const value: unknown = Reflect.get(target, prop, receiver);
            return typeof value === "function"
              ? (value as (...a: unknown[]) => unknown).bind(target)
              : value;
          },
        });
      },
    };
    await o.driver.drain();
    (o.driver.services as { tables: typeof original }).tables = original;
    expect(crashes).toBeGreaterThanOrEqual(10);
    expect(o.driver.deadLettered).toHaveLength(1);
    // The dead-letter consumer could not write either (same bug); run it again without the bug.
    const [dead] = o.driver.deadLettered;
    await handleProvisioningDeadLetter(
      env.services,
      dead?.body,
      o.client.context("provisioningDeadLetter"),
    );
    expect((await o.instance(ref))?.state).toBe("Failed");
  });
});
