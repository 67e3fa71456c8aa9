import { randomUUID } from "node:crypto";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  COVERAGE_MARGIN_MS,
  GatewayPushError,
  MIN_PUSH_INTERVAL_MS,
  handleGatewayMessage,
  requestGatewaySync,
} from "../../../lib/gateway/consumer.js";
import { GATEWAY_PATHS } from "../../../lib/gateway/host.js";
import { decodePushScript } from "../../../local/sandbox-gateway.js";
import { readGatewayState } from "../../../lib/gateway/state.js";
import { createInstance, getInstance, saveInstance } from "../../../lib/instances/store.js";
import type { Instance } from "../../../lib/instances/model.js";
import type { InstanceState } from "../../../lib/instances/lifecycle.js";
import { ManualClock } from "../../helpers/clock.js";
import { randomRef, randomSlug } from "../../helpers/platform.js";
import { startProvisioningEnv, type OrgEnv, type ProvisioningEnv } from "./harness.js";

let env: ProvisioningEnv;
let o: OrgEnv;
/** Time the consumer sees: it stands still, and the coverage margin passes by `advance`. */
const clock = new ManualClock();

beforeAll(async () => {
  env = await startProvisioningEnv({ clock });
  o = await env.newOrg(1);
});
afterAll(async () => {
  await env.close();
});

let ipCounter = 10;
async function plantInstance(state: InstanceState, privateIp?: string): Promise<Instance> {
  const now = clock.now();
  return createInstance(env.services, {
    org: randomSlug("gw"),
    ref: randomRef(),
    state,
    operationId: randomUUID(),
    operation: "provision",
    step: "verify",
    attempts: 0,
    operationStartedAt: now,
    plan: "paid",
    privateIp: privateIp ?? `10.99.${Math.floor(ipCounter / 250)}.${(ipCounter++ % 250) + 1}`,
    createdAt: now,
    updatedAt: now,
  });
}

const hostOf = (ref: string) => `${ref}.${env.services.config.GRAFANA_DOMAIN}`;
const pushes = () => env.arm.runCommands().length;
const gatewayCtx = () => o.client.context("gatewaySync");
/** A message that has already waited for the push interval (it is handled at once). */
const fresh = () => ({ requestedAt: clock.now().toISOString(), deferred: true });

describe("the gateway consumer", () => {
  it("when 20 instances become routable together, then one push carries them all and the other messages are covered", async () => {
    const planted = await Promise.all(Array.from({ length: 20 }, () => plantInstance("Verifying")));
    for (const i of planted) await requestGatewaySync(o.services, `route ${i.ref}`);
    // The burst is older than the clock-skew margin by the time the consumer runs (as with the
    // scheduled delay in production), so coverage does not depend on how fast the requests went.
    clock.advance(COVERAGE_MARGIN_MS + 100);
    const before = pushes();
    const outcomes: string[] = [];
    // Deliver everything, including messages the consumer re-schedules.
    for (let d = o.driver.pending.shift(); d; d = o.driver.pending.shift()) {
      outcomes.push(await handleGatewayMessage(o.services, d.body, gatewayCtx()));
    }
    expect(pushes() - before).toBe(1);
    expect(outcomes.filter((x) => x === "pushed")).toHaveLength(1);
    // Messages within the clock-skew margin of the first render wait for the push interval and
    // then render once more, finding nothing new; the others are covered without rendering.
    for (const x of outcomes) expect(["pushed", "covered", "deferred", "unchanged"]).toContain(x);
    expect(outcomes.filter((x) => x === "covered").length).toBeGreaterThanOrEqual(10);
    const routes = env.platform.gateway?.routes();
    for (const i of planted) expect(routes?.get(hostOf(i.ref))).toBe(`${i.privateIp ?? ""}:3000`);
  });

  it("when the rendered config equals the applied one, then nothing is pushed", async () => {
    await plantInstance("Running");
    await handleGatewayMessage(o.services, fresh(), gatewayCtx());
    const before = pushes();
    const state = await readGatewayState(env.services);
    clock.advance(COVERAGE_MARGIN_MS + 100);
    const outcome = await handleGatewayMessage(o.services, fresh(), gatewayCtx());
    expect(outcome).toBe("unchanged");
    expect(pushes()).toBe(before);
    const after = await readGatewayState(env.services);
    expect(after.hash).toBe(state.hash);
    expect(after.coveredUntil?.getTime()).toBeGreaterThan(state.coveredUntil?.getTime() ?? 0);
  });

  it("when instances leave the routable states, then their routes are removed; rows without a usable IP are skipped", async () => {
    const running = await plantInstance("Running");
    const bad = await plantInstance("Running", "999.1.1.1");
    await handleGatewayMessage(o.services, fresh(), gatewayCtx());
    expect(env.platform.gateway?.routes().has(hostOf(running.ref))).toBe(true);
    expect(env.platform.gateway?.routes().has(hostOf(bad.ref))).toBe(false);
    const current = await getInstance(env.services, running.org, running.ref);
    if (!current) throw new Error("missing");
    await saveInstance(env.services, { ...current, state: "Deleting" });
    await handleGatewayMessage(o.services, fresh(), gatewayCtx());
    expect(env.platform.gateway?.routes().has(hostOf(running.ref))).toBe(false);
  });

  it("when the VM refuses the new config, then the message fails, the previous config keeps serving, and a redelivery applies it", async () => {
    await handleGatewayMessage(o.services, fresh(), gatewayCtx());
    const served = env.platform.gateway?.appliedConfig();
    const stateBefore = await readGatewayState(env.services);
    const added = await plantInstance("Running");
    env.platform.gateway?.failNextPushes(1);
    const body = fresh();
    await expect(handleGatewayMessage(o.services, body, gatewayCtx())).rejects.toBeInstanceOf(
      GatewayPushError,
    );
    expect(env.platform.gateway?.appliedConfig()).toBe(served);
    expect((await readGatewayState(env.services)).hash).toBe(stateBefore.hash);
    const errors = o.client.logs.filter(
      (l) => l.level === "error" && l.functionName === "gatewaySync",
    );
    expect(JSON.stringify(errors.at(-1)?.args)).toContain("nginx -t rejected the new config");
    // The queue redelivers: this time the push goes through.
    expect(await handleGatewayMessage(o.services, body, gatewayCtx())).toBe("pushed");
    expect(env.platform.gateway?.routes().has(hostOf(added.ref))).toBe(true);
  });

  it("when ARM throttles the run command, then a retry is scheduled after Retry-After and the message completes", async () => {
    await plantInstance("Running");
    env.arm.injectFault({
      status: 429,
      retryAfterSeconds: 3,
      method: "POST",
      pathIncludes: "/runCommand",
    });
    o.driver.pending.splice(0);
    const outcome = await handleGatewayMessage(o.services, fresh(), gatewayCtx());
    expect(outcome).toBe("retrying");
    const [retry] = o.driver.pending.splice(0);
    expect(retry?.queue).toBe("gateway");
    expect(retry?.delayMs).toBeGreaterThanOrEqual(2900);
    expect(await handleGatewayMessage(o.services, retry?.body, gatewayCtx())).toBe("pushed");
  });

  it("when a config is pushed, then the script writes nginx.conf with the wildcard certificate paths", async () => {
    await plantInstance("Running");
    await handleGatewayMessage(o.services, fresh(), gatewayCtx());
    const last = env.arm.runCommands().at(-1);
    expect(last).toMatchObject({
      vmName: env.services.config.GATEWAY_VM_NAME,
      resourceGroup: env.services.config.GATEWAY_RESOURCE_GROUP,
      commandId: "RunShellScript",
    });
    expect(last?.script).toContain(`target='${GATEWAY_PATHS.config}'`);
    const config = decodePushScript(last?.script ?? [])?.config ?? "";
    expect(config).toContain(`ssl_certificate ${GATEWAY_PATHS.certificate};`);
    expect(config).toContain(`ssl_certificate_key ${GATEWAY_PATHS.certificateKey};`);
  });

  it("when a message comes soon after a push, then it waits for the push interval once and then pushes", async () => {
    await handleGatewayMessage(o.services, fresh(), gatewayCtx());
    const added = await plantInstance("Running");
    o.driver.pending.splice(0);
    const outcome = await handleGatewayMessage(
      o.services,
      { requestedAt: clock.now().toISOString() },
      gatewayCtx(),
    );
    expect(outcome).toBe("deferred");
    const [later] = o.driver.pending.splice(0);
    expect(later?.delayMs).toBe(MIN_PUSH_INTERVAL_MS);
    expect(await handleGatewayMessage(o.services, later?.body, gatewayCtx())).toBe("pushed");
    expect(env.platform.gateway?.routes().has(hostOf(added.ref))).toBe(true);
  });

  it("when a message is malformed, then it is completed without work", async () => {
    const before = pushes();
    expect(await handleGatewayMessage(o.services, { requestedAt: "yesterday" }, gatewayCtx())).toBe(
      "invalid",
    );
    expect(await handleGatewayMessage(o.services, "not json", gatewayCtx())).toBe("invalid");
    expect(pushes()).toBe(before);
  });
});
