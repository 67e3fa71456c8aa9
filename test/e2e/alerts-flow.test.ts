/**
 * Managed alerts end to end through the shipped bundle: the local host serves `dist/` with the
 * provisioning queue runner on a Service Bus emulator of its own; a change made over HTTP is
 * scheduled, routed to the configure handler on the project's session, pushed through the ARM
 * simulator's run command to the sandbox Grafana host, and shows as applied within seconds.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { startLocalApp, type LocalApp } from "../../local/app-host.js";
import { LOCAL } from "../../local/defaults.js";
import type { Platform } from "../../local/platform.js";
import { parseAlerting, ruleByUid } from "../helpers/alerting.js";
import { connectOrg, type ConnectedOrg } from "../helpers/org.js";
import { startTestPlatform } from "../helpers/platform.js";

describe("managed alerts through the local host", () => {
  let platform: Platform;
  let local: LocalApp;
  let org: ConnectedOrg;

  beforeAll(async () => {
    platform = await startTestPlatform({ deploymentDelayMs: 0, ownServiceBus: true });
    local = await startLocalApp(platform, {
      port: 0,
      adminKey: LOCAL.adminKey,
      functionKey: LOCAL.functionKey,
      runTimers: false,
    });
    if (!platform.supabase) throw new Error("no Supabase simulator");
    org = await connectOrg(platform.services, platform.supabase, { projects: 1 });
  }, 120_000);
  afterAll(async () => {
    await local.close();
    await platform.close();
  });

  const api = (path: string, init: { method?: string; body?: unknown } = {}) =>
    fetch(`${local.host.url}/api${path}`, {
      method: init.method ?? "GET",
      headers: {
        cookie: `${org.cookie.name}=${org.cookie.value}`,
        origin: new URL(platform.config.PUBLIC_BASE_URL).origin,
        "content-type": "application/json",
      },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    });

  it("a threshold changed over HTTP is on the host within seconds", async () => {
    const ref = org.refs[0] ?? "";
    expect((await api(`/projects/${ref}/grafana`, { method: "PUT" })).status).toBe(202);
    // Polled until it settles; the bounds only end a stuck flow (a loaded machine is slow).
    const poll = { timeout: 60_000, interval: 100 };
    await expect
      .poll(
        async () =>
          ((await (await api(`/projects/${ref}/grafana`)).json()) as { state: string }).state,
        poll,
      )
      .toBe("Running");

    const res = await api(`/projects/${ref}/grafana/alerts`, {
      method: "PATCH",
      body: { alerts: { "high-cpu": { params: { threshold: 72 } } } },
    });
    expect(res.status).toBe(202);
    const started = performance.now();
    await expect
      .poll(async () => {
        const body = (await (await api(`/projects/${ref}/grafana`)).json()) as {
          configVersion: { desired: number; applied: number | null };
        };
        return body.configVersion;
      }, poll)
      .toEqual({ desired: 1, applied: 1 });
    expect(performance.now() - started).toBeLessThan(30_000);
    const pushed = platform.grafanaHosts?.provisioning(ref);
    const cpu = ruleByUid(parseAlerting(pushed?.document ?? ""), "supafana-cpu-busy");
    expect(JSON.stringify(cpu.data)).toContain('"params":[72]');
  });
});
