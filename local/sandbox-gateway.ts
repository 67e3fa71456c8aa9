/**
 * A stand-in for the gateway VM when everything runs locally (sandbox and tests): it executes
 * the push script the gateway consumer sends through the ARM simulator's run command by
 * decoding its payload and checking its hash (what the real script does before `nginx -t`),
 * keeps the applied config, and answers the readiness probe and Grafana API calls for the hosts
 * that config routes. Nothing here is used in Azure.
 */
import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";

import type { GrafanaHostHttp } from "../lib/grafana-host/http.js";
import { KEY_APPLIED_MARKER, KEY_PAYLOAD_DELIMITER } from "../lib/grafana-host/key-rotation.js";
import { APPLIED_MARKER, FAILED_MARKER } from "../lib/gateway/push-script.js";

export interface SandboxRunCommandOutcome {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface SandboxGateway {
  /** Run-command executor for the ARM simulator (`runCommandExecutor`). */
  executor: (
    vmName: string,
    script: string[],
    parameters: Array<{ name: string; value: string }>,
  ) => Promise<SandboxRunCommandOutcome>;
  /** The Grafana-hosts port: 200 for a routed host's URL, 404 otherwise. */
  grafanaHosts: GrafanaHostHttp;
  /** The config last applied, if any. */
  appliedConfig(): string | undefined;
  /** Host names the applied config routes, with their upstreams. */
  routes(): Map<string, string>;
  /** Pushes applied so far. */
  pushes(): number;
  /** The next `count` pushes fail as if `nginx -t` refused the config. */
  failNextPushes(count: number): void;
}

/** Decodes the config a push script carries; undefined when the script is not one. */
export function decodePushScript(
  script: readonly string[],
): { config: string; sha256: string } | undefined {
  const expectedLine = script.find((l) => l.startsWith("expected="));
  const start = script.findIndex((l) => l.includes("<<'SUPAFANA_PAYLOAD'"));
  const end = script.findIndex((l, i) => i > start && l === "SUPAFANA_PAYLOAD");
  if (!expectedLine || start < 0 || end < 0) return undefined;
  try {
    const config = gunzipSync(
      Buffer.from(script.slice(start + 1, end).join(""), "base64"),
    ).toString("utf8");
    const sha256 = createHash("sha256").update(config, "utf8").digest("hex");
    if (`expected=${sha256}` !== expectedLine) return undefined;
    return { config, sha256 };
  } catch {
    return undefined;
  }
}

/** `host upstream;` entries of the `map $host $grafana_upstream` block. */
export function routedHosts(config: string): Map<string, string> {
  const out = new Map<string, string>();
  let inMap = false;
  for (const raw of config.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("map $host $grafana_upstream")) {
      inMap = true;
      continue;
    }
    if (!inMap) continue;
    if (line === "}") break;
    const m = /^([a-z0-9.-]+)\s+([0-9.]+:\d+);$/.exec(line);
    if (m?.[1] && m[2]) out.set(m[1], m[2]);
  }
  return out;
}

export interface SandboxGatewayOptions {
  /**
   * Whether the Grafana host behind a routed name (`<ref>.<domain>`) answers: its VM exists and
   * is up. Without it every routed host answers. A routed host that does not answers 502, as
   * nginx does when the upstream is unreachable.
   */
  hostAnswers?: (hostname: string) => boolean;
}

export function createSandboxGateway(opts: SandboxGatewayOptions = {}): SandboxGateway {
  let applied: string | undefined;
  let routes = new Map<string, string>();
  let pushes = 0;
  let failing = 0;

  const status = (url: string): number => {
    let host: string;
    try {
      host = new URL(url).hostname.toLowerCase();
    } catch {
      return 0;
    }
    if (!routes.has(host)) return 404;
    return (opts.hostAnswers?.(host) ?? true) ? 200 : 502;
  };

  return {
    executor: (_vmName, script) => {
      // A Grafana host's key swap: the sandbox hosts scrape nothing, so the swap "succeeds".
      if (script.some((l) => l.includes(`<<'${KEY_PAYLOAD_DELIMITER}'`))) {
        return Promise.resolve({ exitCode: 0, stdout: `${KEY_APPLIED_MARKER}\n`, stderr: "" });
      }
      const decoded = decodePushScript(script);
      if (!decoded) {
        return Promise.resolve({
          exitCode: 1,
          stdout: "",
          stderr: `${FAILED_MARKER} could not decode the config payload\n`,
        });
      }
      if (failing > 0) {
        failing -= 1;
        return Promise.resolve({
          exitCode: 1,
          stdout: "",
          stderr: `nginx: [emerg] simulated failure\n${FAILED_MARKER} nginx -t rejected the new config; the current config is unchanged\n`,
        });
      }
      applied = decoded.config;
      routes = routedHosts(decoded.config);
      pushes += 1;
      return Promise.resolve({
        exitCode: 0,
        stdout: `${APPLIED_MARKER} ${decoded.sha256}\n`,
        stderr: "",
      });
    },
    grafanaHosts: {
      probe: (url) => Promise.resolve(status(url)),
      fetch: (input: string | URL | Request) => {
        const url =
          typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
        const code = status(url);
        return Promise.resolve(
          code === 0 ? Response.error() : new Response(null, { status: code }),
        );
      },
    },
    appliedConfig: () => applied,
    routes: () => new Map(routes),
    pushes: () => pushes,
    failNextPushes(count) {
      failing = Math.max(0, count);
    },
  };
}
