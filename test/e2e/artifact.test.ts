/**
 * The artifact Azure runs: `dist/index.js` loaded through the worker contract must index every
 * function and run each lazily loaded SDK chunk for real: health (Table storage and Service Bus),
 * a Service Bus send, ARM calls (deployment, VM, DNS) against the simulator, and a timer.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { allDefinitions } from "../../functions/all.js";
import type { LocalApp } from "../../local/app-host.js";
import { LOCAL } from "../../local/defaults.js";
import type { Platform } from "../../local/platform.js";
import { deploymentsOf, dnsOf } from "../integration/provisioning/harness.js";
import { connectOrg, type ConnectedOrg } from "../helpers/org.js";
import { startTestApp, startTestPlatform } from "../helpers/platform.js";

describe("the shipped bundle through the worker contract", () => {
  let platform: Platform;
  let local: LocalApp;
  let org: ConnectedOrg;

  beforeAll(async () => {
    platform = await startTestPlatform({ deploymentDelayMs: 50, ownServiceBus: true });
    org = await connectOrg(platform.services, platform.supabase!, { projects: 1 });
    local = await startTestApp(platform, { runQueues: true });
  });
  afterAll(async () => {
    await local.close();
    await platform.close();
  });

  const call = (method: string, path: string, headers: Record<string, string> = {}) =>
    fetch(`${local.host.url}${path}`, {
      method,
      headers: {
        cookie: `${org.cookie.name}=${org.cookie.value}`,
        origin: platform.config.PUBLIC_BASE_URL,
        ...headers,
      },
    });

  it("when loaded, then every function is indexed with the host's binding shapes", () => {
    const names = local.app.functions.map((f) => f.name).sort();
    expect(names).toEqual(allDefinitions.map((d) => d.name).sort());
    const deadLetter = local.app.functions.find((f) => f.name === "provisioningDeadLetter");
    expect(deadLetter?.trigger).toMatchObject({
      type: "serviceBusTrigger",
      queueName: "%PROVISIONING_QUEUE%/$DeadLetterQueue",
      connection: "ServiceBusConnection",
    });
    for (const f of local.app.functions) expect(f.bindingName).toMatch(/^\w+Trigger[0-9a-f]+$/);
  });

  it("when health is asked, then storage and Service Bus answer through the bundle's chunks", async () => {
    const res = await call("GET", "/api/health");
    const body = (await res.json()) as { checks: Record<string, { status: string }> };
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.checks.serviceBus?.status).toBe("ok");
    expect(body.checks.storage?.status).toBe("ok");
  });

  it("when a project is provisioned, then the message is sent and the ARM calls reach the simulator", async () => {
    const ref = org.refs[0]!;
    expect((await call("PUT", `/api/projects/${ref}/grafana`)).status).toBe(202);
    await expect
      .poll(
        async () =>
          ((await (await call("GET", `/api/projects/${ref}/grafana`)).json()) as { state: string })
            .state,
        { timeout: 90_000, interval: 100 },
      )
      .toBe("Running");
    expect(deploymentsOf(platform.arm!, ref)).toHaveLength(1);
    expect(deploymentsOf(platform.arm!, ref)[0]?.puts).toBe(1);
    expect(dnsOf(platform.arm!, ref)).toHaveLength(1);
  }, 120_000);

  it("when the timer is run through the host's admin API, then it completes", async () => {
    const res = await fetch(`${local.host.url}/admin/functions/reconciler`, {
      method: "POST",
      headers: { "x-functions-key": LOCAL.adminKey, "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(202);
  });
});
