/**
 * `npm start`: the whole backend on a laptop, offline, on embedded defaults.
 * Builds `dist/` when a source changed, starts Azurite, the Service Bus emulator and the
 * simulators, then loads the shipped bundle through the Functions worker contract and serves it
 * at http://localhost:7071/api/... with queue triggers and timers running.
 * Ctrl-C stops everything it started.
 */
import type { IncomingMessage, ServerResponse } from "node:http";

import { ConfigError } from "../lib/config.js";
import { ensureBundle, startLocalApp, type LocalApp } from "./app-host.js";
import { describeBindings } from "./function-host.js";
import { LOCAL, startPlatform, type Platform } from "./platform.js";
import { startLocalSandboxGrafana, type SandboxGrafana } from "./sandbox-grafana.js";
import { createWebStatic, firstOf } from "./web-static.js";

const port = Number(process.env.PORT ?? 7071);
const quiet = process.env.LOCAL_QUIET === "1";
const say = (line: string) => {
  process.stdout.write(`${line}\n`);
};

function sandboxRoutes(platform: Platform) {
  return (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (!platform.sandbox || !url.pathname.startsWith("/_local/")) return Promise.resolve(false);
    if (url.pathname === "/_local/mail" && req.method === "GET") {
      res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
      res.end(JSON.stringify(platform.loops?.sent ?? []));
      return Promise.resolve(true);
    }
    const grafana = /^\/_local\/grafana\/([a-z]{20})\/provisioning$/.exec(url.pathname);
    if (grafana?.[1] && req.method === "GET" && platform.grafanaHosts) {
      const pushed = platform.grafanaHosts.provisioning(grafana[1]);
      res.writeHead(pushed ? 200 : 404, { "content-type": "application/json; charset=utf-8" });
      res.end(
        JSON.stringify(
          pushed ?? { error: { code: "not_found", message: "Nothing pushed to this host yet." } },
        ),
      );
      return Promise.resolve(true);
    }
    return Promise.resolve(false);
  };
}

async function main(): Promise<void> {
  const started = Date.now();
  const publicBaseUrl = process.env.PUBLIC_BASE_URL ?? `http://localhost:${port}`;
  let platform: Platform | undefined;
  let local: LocalApp | undefined;
  let grafana: SandboxGrafana | undefined;
  let stopping = false;

  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    say("\nStopping…");
    await local?.close().catch(() => undefined);
    await grafana?.close().catch(() => undefined);
    await platform?.close().catch(() => undefined);
    say("Stopped. Nothing left running.");
    process.exit(code);
  };
  process.on("SIGINT", () => void stop(0));
  process.on("SIGTERM", () => void stop(0));

  try {
    ensureBundle(say);
    platform = await startPlatform({
      env: process.env,
      publicBaseUrl,
      ...(process.env.LOCAL_DATA_DIR ? { dataDir: process.env.LOCAL_DATA_DIR } : {}),
    });
    local = await startLocalApp(platform, {
      port,
      host: process.env.HOST ?? "127.0.0.1",
      adminKey: process.env.LOCAL_ADMIN_KEY ?? LOCAL.adminKey,
      functionKey: process.env.LOCAL_FUNCTION_KEY ?? LOCAL.functionKey,
      extraRoutes: firstOf(sandboxRoutes(platform), createWebStatic()),
      log: (level, message) => {
        if (level === "error") console.error(message);
        else if (!quiet) say(message);
      },
    });
    const gateway = platform.gateway;
    if (platform.sandbox && gateway) {
      const sandbox = await startLocalSandboxGrafana(
        platform.config.GRAFANA_DOMAIN,
        (h) => gateway.routes().has(h),
        process.env,
      );
      grafana = sandbox.grafana;
      platform.started.push({ name: "Sandbox Grafana pages", url: sandbox.note });
    }
  } catch (err) {
    if (err instanceof ConfigError) console.error(err.message);
    else console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    await stop(1);
    return;
  }

  say(
    `Supafana local host ready in ${Date.now() - started} ms${platform.sandbox ? " (sandbox)" : ""}`,
  );
  const { host, app } = local;
  for (const s of platform.started) say(`  ${s.name.padEnd(36)} ${s.url}`);
  say(`  ${"Functions (dist/index.js)".padEnd(36)} ${host.url}/api`);
  say(`  ${"Web app".padEnd(36)} ${publicBaseUrl}/`);
  say("");
  for (const line of describeBindings(app, platform.config)) say(line);
  say("");
  say(`Try: curl ${host.url}/api/health`);
  say(`Admin key (local only): ${process.env.LOCAL_ADMIN_KEY ?? LOCAL.adminKey}   Ctrl-C to stop.`);
}

void main();
