/**
 * The shipped app on a laptop: the built bundle (`dist/index.js`, rebuilt first when a source
 * is newer) loaded through the worker contract, its settings given as environment variables as
 * the Functions host gives them, and served by the local function host. `npm start`, the
 * end-to-end tests and the benchmark all run the app this way.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

import {
  serveApp,
  workerLog,
  type FunctionHost,
  type FunctionHostOptions,
} from "./function-host.js";
import type { Platform } from "./platform.js";
import { loadWorkerApp, type WorkerApp } from "./worker/app.js";
import { startSandboxNetwork } from "./worker/sandbox-network.js";

export const APP_ENTRY = "dist/index.js";
const SOURCES = ["lib", "functions", "package.json", "package-lock.json", "scripts/build.mjs"];

function newestMtime(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  return readdirSync(path).reduce((m, name) => Math.max(m, newestMtime(join(path, name))), 0);
}

/** True when the bundle is missing or older than a source it is built from. */
export function bundleIsStale(entry = APP_ENTRY): boolean {
  if (!existsSync(entry)) return true;
  const built = statSync(entry).mtimeMs;
  return SOURCES.some((s) => existsSync(s) && newestMtime(s) > built);
}

/** Builds the bundle when it is stale (a second or two); returns whether it built. */
export function ensureBundle(log: (line: string) => void = () => undefined): boolean {
  if (!bundleIsStale()) return false;
  log("Building dist/ (sources changed)…");
  execFileSync(process.execPath, ["scripts/build.mjs", "--app-only"], { stdio: "pipe" });
  return true;
}

export interface LocalApp {
  app: WorkerApp;
  host: FunctionHost;
  close(): Promise<void>;
}

/**
 * Loads the built app with the platform's settings and serves it. Where the platform runs the
 * ARM simulator, the app reaches it (and the simulated gateway) with its production settings
 * through the sandbox network: a managed identity endpoint and local TLS for the public names.
 */
export async function startLocalApp(
  platform: Platform,
  opts: FunctionHostOptions & { entry?: string },
): Promise<LocalApp> {
  const network = platform.arm
    ? await startSandboxNetwork({
        armUrl: platform.arm.url,
        armHost: new URL(platform.config.ARM_ENDPOINT).hostname,
        ...(platform.gateway ? { gateway: platform.gateway } : {}),
        grafanaDomain: platform.config.GRAFANA_DOMAIN,
      })
    : undefined;
  try {
    // App settings reach the worker as environment variables.
    Object.assign(process.env, platform.env, network?.env ?? {});
    const app = await loadWorkerApp(opts.entry ?? APP_ENTRY, workerLog(opts.log));
    const host = await serveApp(app, {
      ...opts,
      settings: platform.config,
      serviceBus: () => platform.services.bus.client(),
    });
    return {
      app,
      host,
      async close() {
        await host.close();
        await app.terminate();
        await network?.close();
      },
    };
  } catch (err) {
    await network?.close();
    throw err;
  }
}
