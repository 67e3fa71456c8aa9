import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import {
  gatewayConfigHash,
  renderGatewayConfig,
  type GatewayRoute,
} from "../../../lib/gateway/nginx.js";
import {
  APPLIED_MARKER,
  FAILED_MARKER,
  parseAppliedHash,
  renderGatewayPushScript,
} from "../../../lib/gateway/push-script.js";
import { createNginxSandbox, nginxPath, type NginxSandbox } from "../../helpers/system-tools.js";
import { refOf } from "./helpers.js";

const DOMAIN = "grafana.example.com";

function routes(n: number, offset = 0): GatewayRoute[] {
  return Array.from({ length: n }, (_, i) => ({
    ref: refOf(i * 7919 + offset),
    privateIp: `10.${(i >> 8) & 255}.${i & 255}.4`,
  }));
}

function render(sb: NginxSandbox, r: GatewayRoute[]): string {
  return renderGatewayConfig(r, {
    domain: DOMAIN,
    certificatePath: sb.certificatePath,
    certificateKeyPath: sb.certificateKeyPath,
    paths: sb.paths,
  });
}

function runScript(sb: NginxSandbox, lines: string[], shell: string) {
  const file = join(sb.dir, "push.sh");
  writeFileSync(file, `${lines.join("\n")}\n`);
  const res = spawnSync(shell, [file], { encoding: "utf8", timeout: 30_000 });
  return { status: res.status, stdout: res.stdout, stderr: res.stderr };
}

describe.each(["sh", "bash"])("renderGatewayPushScript run with %s", (shell) => {
  let sb: NginxSandbox;
  let reloadLog: string;
  let previous: string;

  beforeEach(() => {
    sb = createNginxSandbox();
    reloadLog = join(sb.dir, "reloads.log");
    previous = render(sb, routes(3));
    writeFileSync(sb.configPath, previous);
  });
  afterEach(() => {
    sb.cleanup();
  });

  const push = (config: string, reloadCommand?: string) =>
    renderGatewayPushScript(config, {
      targetPath: sb.configPath,
      nginxBinary: nginxPath(),
      prefix: `${sb.dir}/`,
      reloadCommand: reloadCommand ?? `echo reload >> ${reloadLog}`,
    });

  const reloads = () =>
    existsSync(reloadLog) ? readFileSync(reloadLog, "utf8").trim().split("\n").length : 0;

  it("when the config comes with an asset, then the asset is installed byte for byte before nginx -t", () => {
    const assetPath = join(sb.dir, "supafana", "signin-0123456789abcdef.js");
    const content = `// it's "$(touch ${sb.dir}/pwned)" \`x\` $HOME\n${"var a = 1;\n".repeat(500)}`;
    const next = render(sb, routes(4, 9));
    const lines = renderGatewayPushScript(next, {
      targetPath: sb.configPath,
      nginxBinary: nginxPath(),
      prefix: `${sb.dir}/`,
      reloadCommand: `echo reload >> ${reloadLog}`,
      assets: [{ path: assetPath, content }],
    });
    const res = runScript(sb, lines, shell);
    expect(res.stderr).toBe("");
    expect(res.status).toBe(0);
    expect(readFileSync(assetPath, "utf8")).toBe(content);
    expect(existsSync(`${assetPath}.supafana-new`)).toBe(false);
    expect(existsSync(join(sb.dir, "pwned"))).toBe(false);
    expect(readFileSync(sb.configPath, "utf8")).toBe(next);
  });

  it("when the new config is valid, then it is swapped in, the old one kept, nginx reloaded once", () => {
    // Quotes, dollars, backticks and command substitutions must arrive byte for byte.
    const next = `${render(sb, routes(5, 3))}# it's "$(touch ${sb.dir}/pwned)" \`touch ${sb.dir}/pwned2\` $HOME \\n\n`;
    const res = runScript(sb, push(next), shell);
    expect(res.stderr).toBe("");
    expect(res.status).toBe(0);
    expect(readFileSync(sb.configPath, "utf8")).toBe(next);
    expect(readFileSync(`${sb.configPath}.supafana-prev`, "utf8")).toBe(previous);
    expect(existsSync(join(sb.dir, "pwned"))).toBe(false);
    expect(existsSync(join(sb.dir, "pwned2"))).toBe(false);
    expect(reloads()).toBe(1);
    expect(res.stdout.trim().split("\n").at(-1)).toBe(
      `${APPLIED_MARKER} ${gatewayConfigHash(next)}`,
    );
    expect(parseAppliedHash(res.stdout)).toBe(gatewayConfigHash(next));
    expect(readdirSync(sb.dir).filter((f) => f.includes("supafana-new"))).toEqual([]);
  });

  it("when the new config fails nginx -t, then the previous file stays and the script exits non-zero", () => {
    const broken = render(sb, routes(5, 3)).replace(
      "proxy_pass http://$grafana_upstream;",
      "proxy_pass;",
    );
    const res = runScript(sb, push(broken), shell);
    expect(res.status).not.toBe(0);
    expect(res.stderr).toContain(`${FAILED_MARKER} nginx -t rejected the new config`);
    expect(res.stderr).toContain("proxy_pass");
    expect(parseAppliedHash(res.stdout)).toBeUndefined();
    expect(readFileSync(sb.configPath, "utf8")).toBe(previous);
    expect(reloads()).toBe(0);
    expect(readdirSync(sb.dir).filter((f) => f.includes("supafana-new"))).toEqual([]);
  });

  it("when the reload fails, then the previous config is restored, nginx reloaded again, and it fails", () => {
    const flag = join(sb.dir, "failed-once");
    const reload = `echo reload >> ${reloadLog}; test -f ${flag} || { touch ${flag}; false; }`;
    const next = render(sb, routes(5, 3));
    const res = runScript(sb, push(next, reload), shell);
    expect(res.status).not.toBe(0);
    expect(res.stderr).toContain(`${FAILED_MARKER} nginx reload failed; previous config restored`);
    expect(readFileSync(sb.configPath, "utf8")).toBe(previous);
    expect(reloads()).toBe(2);
  });

  it("when the target already holds the same config, then it reports success without reloading", () => {
    const res = runScript(sb, push(previous), shell);
    expect(res.status).toBe(0);
    expect(parseAppliedHash(res.stdout)).toBe(gatewayConfigHash(previous));
    expect(reloads()).toBe(0);
  });

  it("when there is no current config yet, then the new one is installed", () => {
    spawnSync("rm", ["-f", sb.configPath]);
    const next = render(sb, routes(2));
    const res = runScript(sb, push(next), shell);
    expect(res.status).toBe(0);
    expect(readFileSync(sb.configPath, "utf8")).toBe(next);
  });
});

describe("renderGatewayPushScript shape", () => {
  const opts = { targetPath: "/etc/nginx/nginx.conf" };

  it("never embeds config text, only the base64 payload", () => {
    const config = renderGatewayConfig(routes(3), {
      domain: DOMAIN,
      certificatePath: "/etc/nginx/tls/wildcard.pem",
      certificateKeyPath: "/etc/nginx/tls/wildcard.key",
    });
    const lines = renderGatewayPushScript(config, opts);
    expect(lines[0]).toBe("#!/bin/sh");
    expect(lines).toContain("set -eu");
    expect(lines.join("\n")).not.toContain("proxy_pass");
    expect(lines.join("\n")).toContain("systemctl reload-or-restart nginx");
    expect(lines.join("\n")).toContain(gatewayConfigHash(config));
  });

  it("is deterministic", () => {
    expect(renderGatewayPushScript("x", opts)).toEqual(renderGatewayPushScript("x", opts));
  });

  it("keeps a 5,000-route config well inside the run-command size budget", () => {
    // Random refs and addresses compress far worse than sequential ones; measure the worst case.
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const randomRoutes = Array.from({ length: 5000 }, () => ({
      ref: Array.from({ length: 20 }, () => String.fromCharCode(97 + rand(26))).join(""),
      privateIp: `10.${rand(256)}.${rand(256)}.${1 + rand(254)}`,
    }));
    const config = renderGatewayConfig(randomRoutes, {
      domain: DOMAIN,
      certificatePath: "/etc/nginx/tls/wildcard.pem",
      certificateKeyPath: "/etc/nginx/tls/wildcard.key",
    });
    const bytes = Buffer.byteLength(renderGatewayPushScript(config, opts).join("\n"));
    console.log(`5,000-route config: ${config.length} bytes; push script: ${bytes} bytes`);
    expect(bytes).toBeLessThan(200 * 1024);
  });

  it.each([
    ["a relative target", { targetPath: "nginx.conf" }],
    ["a target with a space", { targetPath: "/etc/nginx/my conf" }],
    ["a target with a quote", { targetPath: "/etc/nginx/'.conf" }],
    [
      "a binary with a semicolon",
      { targetPath: "/etc/nginx/nginx.conf", nginxBinary: "nginx;reboot" },
    ],
    ["a multi-line reload", { targetPath: "/etc/nginx/nginx.conf", reloadCommand: "a\nb" }],
  ])("when given %s, then it throws", (_name, bad) => {
    expect(() => renderGatewayPushScript("x", bad)).toThrow();
  });
});
