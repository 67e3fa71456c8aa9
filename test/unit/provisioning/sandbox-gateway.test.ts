import { describe, expect, it } from "vitest";

import { renderGatewayConfig } from "../../../lib/gateway/nginx.js";
import { APPLIED_MARKER, renderGatewayPushScript } from "../../../lib/gateway/push-script.js";
import {
  createSandboxGateway,
  decodePushScript,
  routedHosts,
} from "../../../local/sandbox-gateway.js";

const opts = {
  domain: "grafana.example.com",
  certificatePath: "/etc/nginx/tls/wildcard.crt",
  certificateKeyPath: "/etc/nginx/tls/wildcard.key",
};
const routes = [
  { ref: "abcdefghijklmnopqrst", privateIp: "10.0.0.4" },
  { ref: "bcdefghijklmnopqrstu", privateIp: "10.0.0.5" },
];

describe("the sandbox gateway", () => {
  it("when a push script is run, then it applies the config and the probe answers for routed hosts only", async () => {
    const gw = createSandboxGateway();
    const config = renderGatewayConfig(routes, opts);
    const script = renderGatewayPushScript(config, { targetPath: "/etc/nginx/nginx.conf" });
    const out = await gw.executor("gw", script, []);
    expect(out.exitCode).toBe(0);
    expect(out.stdout).toMatch(new RegExp(`^${APPLIED_MARKER} [0-9a-f]{64}`));
    expect(gw.appliedConfig()).toBe(config);
    expect(
      await gw.grafanaHosts.probe("https://abcdefghijklmnopqrst.grafana.example.com/api/health"),
    ).toBe(200);
    expect(
      await gw.grafanaHosts.probe("https://zzzzzzzzzzzzzzzzzzzz.grafana.example.com/api/health"),
    ).toBe(404);
    expect(gw.pushes()).toBe(1);
  });

  it("when a routed host does not answer, then the probe and Grafana calls get 502 as from nginx", async () => {
    const up = new Set(["abcdefghijklmnopqrst.grafana.example.com"]);
    const gw = createSandboxGateway({ hostAnswers: (host) => up.has(host) });
    const script = renderGatewayPushScript(renderGatewayConfig(routes, opts), {
      targetPath: "/etc/nginx/nginx.conf",
    });
    await gw.executor("gw", script, []);
    const url = (ref: string) => `https://${ref}.grafana.example.com/api/health`;
    expect(await gw.grafanaHosts.probe(url("abcdefghijklmnopqrst"))).toBe(200);
    expect(await gw.grafanaHosts.probe(url("bcdefghijklmnopqrstu"))).toBe(502);
    expect((await gw.grafanaHosts.fetch(url("bcdefghijklmnopqrstu"))).status).toBe(502);
    expect(await gw.grafanaHosts.probe(url("zzzzzzzzzzzzzzzzzzzz"))).toBe(404);
    up.clear();
    expect(await gw.grafanaHosts.probe(url("abcdefghijklmnopqrst"))).toBe(502);
  });

  it("when a push is made to fail or the script is not a push, then nothing is applied", async () => {
    const gw = createSandboxGateway();
    gw.failNextPushes(1);
    const script = renderGatewayPushScript(renderGatewayConfig(routes, opts), {
      targetPath: "/etc/nginx/nginx.conf",
    });
    expect((await gw.executor("gw", script, [])).exitCode).toBe(1);
    expect((await gw.executor("gw", ["echo hi"], [])).exitCode).toBe(1);
    expect(gw.appliedConfig()).toBeUndefined();
    expect(
      await gw.grafanaHosts.probe("https://abcdefghijklmnopqrst.grafana.example.com/api/health"),
    ).toBe(404);
  });

  it("when a script's payload was tampered with, then it does not decode", () => {
    const script = renderGatewayPushScript(renderGatewayConfig(routes, opts), {
      targetPath: "/etc/nginx/nginx.conf",
    });
    const tampered = script.map((l) =>
      l.startsWith("expected=") ? `expected=${"0".repeat(64)}` : l,
    );
    expect(decodePushScript(tampered)).toBeUndefined();
    expect(decodePushScript(script)?.config).toContain(
      "abcdefghijklmnopqrst.grafana.example.com 10.0.0.4:3000;",
    );
  });

  it("when reading the map of a config, then every host and upstream is found", () => {
    expect([...routedHosts(renderGatewayConfig(routes, opts)).entries()]).toEqual([
      ["abcdefghijklmnopqrst.grafana.example.com", "10.0.0.4:3000"],
      ["bcdefghijklmnopqrstu.grafana.example.com", "10.0.0.5:3000"],
    ]);
  });
});
