/**
 * `npm start`: the whole backend on a laptop, offline, on embedded defaults.
 * Starts Azurite, the Service Bus emulator and the simulators, then serves every function
 * definition at http://localhost:7071/api/... with queue triggers and timers running.
 * Ctrl-C stops everything it started.
 */
import type { IncomingMessage, ServerResponse } from "node:http";

import { allDefinitions } from "../functions/all.js";
import { ConfigError } from "../lib/config.js";
import { startFunctionHost, type FunctionHost } from "./function-host.js";
import { LOCAL, startPlatform, type Platform } from "./platform.js";

const port = Number(process.env.PORT ?? 7071);
const quiet = process.env.LOCAL_QUIET === "1";
const say = (line: string) => {
  process.stdout.write(`${line}\n`);
};

function sandboxRoutes(platform: Platform) {
  return (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (!platform.config.SANDBOX || !url.pathname.startsWith("/_local/"))
      return Promise.resolve(false);
    if (url.pathname === "/_local/mail" && req.method === "GET") {
      res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
      res.end(JSON.stringify(platform.loops?.sent ?? []));
      return Promise.resolve(true);
    }
    return Promise.resolve(false);
  };
}

async function main(): Promise<void> {
  const started = Date.now();
  const publicBaseUrl = process.env.PUBLIC_BASE_URL ?? `http://localhost:${port}`;
  let platform: Platform | undefined;
  let host: FunctionHost | undefined;
  let stopping = false;

  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    say("\nStopping…");
    await host?.close().catch(() => undefined);
    await platform?.close().catch(() => undefined);
    say("Stopped. Nothing left running.");
    process.exit(code);
  };
  process.on("SIGINT", () => void stop(0));
  process.on("SIGTERM", () => void stop(0));

  try {
    platform = await startPlatform({
      env: process.env,
      publicBaseUrl,
      ...(process.env.LOCAL_DATA_DIR ? { dataDir: process.env.LOCAL_DATA_DIR } : {}),
    });
    host = await startFunctionHost(allDefinitions, platform.services, {
      port,
      host: process.env.HOST ?? "127.0.0.1",
      adminKey: process.env.LOCAL_ADMIN_KEY ?? LOCAL.adminKey,
      functionKey: process.env.LOCAL_FUNCTION_KEY ?? LOCAL.functionKey,
      extraRoutes: sandboxRoutes(platform),
      log: (level, message) => {
        if (level === "error") console.error(message);
        else if (!quiet) say(message);
      },
    });
  } catch (err) {
    if (err instanceof ConfigError) console.error(err.message);
    else console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    await stop(1);
    return;
  }

  say(
    `Supafana local host ready in ${Date.now() - started} ms${platform.config.SANDBOX ? " (sandbox)" : ""}`,
  );
  for (const s of platform.started) say(`  ${s.name.padEnd(36)} ${s.url}`);
  say(`  ${"Functions".padEnd(36)} ${host.url}/api`);
  say("");
  for (const def of allDefinitions) {
    if (def.kind === "http")
      say(
        `  http   ${def.methods.join(",").padEnd(12)} /api/${def.route}${def.authLevel === "anonymous" ? "" : `  [${def.authLevel} key]`}`,
      );
    else if (def.kind === "timer")
      say(`  timer  ${def.name} (${def.schedule})  POST /admin/functions/${def.name}`);
    else
      say(
        `  queue  ${def.name} <- ${platform.config[def.queueSetting]}${def.isSessionsEnabled ? " (sessions)" : ""}`,
      );
  }
  say("");
  say(`Try: curl ${host.url}/api/health`);
  say(`Admin key (local only): ${process.env.LOCAL_ADMIN_KEY ?? LOCAL.adminKey}   Ctrl-C to stop.`);
}

void main();
