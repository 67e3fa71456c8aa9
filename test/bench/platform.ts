/**
 * Platform figures: cold load of the whole function app (bundled dist/ against the unbundled
 * tsc build) in fresh Node processes, and GET /api/health latency on the local host.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";

import { startLocalApp } from "../../local/app-host.js";
import { LOCAL } from "../../local/defaults.js";
import { startPlatform } from "../../local/platform.js";
import { fmt, percentile, runLoad } from "./load.js";

/**
 * Loads an entry in a fresh process with a valid environment. Returns the time the import took
 * (the app's own load: reading, compiling and running every module until every function is
 * registered) and the time since the process started (Node's own start-up included).
 */
function loadOnce(
  entry: string,
  env: Record<string, string>,
): { importMs: number; processMs: number } {
  const code = `const s=performance.now();await import(${JSON.stringify(entry)});const e=performance.now();console.log(JSON.stringify({importMs:e-s,processMs:e}));`;
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", code], {
    env: { ...process.env, ...env },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  });
  const line = out.trim().split("\n").at(-1) ?? "{}";
  return JSON.parse(line) as { importMs: number; processMs: number };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return percentile(sorted, 50);
}

export async function benchPlatform(): Promise<Record<string, string | number>> {
  const figures: Record<string, string | number> = {};
  const bundled = resolve("dist/index.js");
  const unbundled = resolve("build/functions/index.js");
  if (!existsSync(bundled) || !existsSync(unbundled)) throw new Error("run `npm run build` first");

  // A valid environment so the entry loads as it would in Azure (nothing connects at load).
  const platform = await startPlatform({ sandbox: true });
  try {
    const env = { ...platform.env };
    const runs = 9;
    const b: Array<{ importMs: number; processMs: number }> = [];
    const u: Array<{ importMs: number; processMs: number }> = [];
    for (let i = 0; i < runs; i++) {
      b.push(loadOnce(bundled, env));
      u.push(loadOnce(unbundled, env));
    }
    const bi = median(b.map((x) => x.importMs));
    const ui = median(u.map((x) => x.importMs));
    const bp = median(b.map((x) => x.processMs));
    const up = median(u.map((x) => x.processMs));
    figures["app load (import until registered), bundled dist/ (median of 9)"] = fmt(bi);
    figures["app load (import until registered), unbundled tsc build"] = fmt(ui);
    figures["bundled speed-up of the app load (target >= 3x, bundled < 300 ms)"] =
      `${(ui / bi).toFixed(1)}x`;
    figures["fresh process start to registered, bundled / unbundled"] =
      `${fmt(bp)} / ${fmt(up)} (${(up / bp).toFixed(1)}x; Node's own start-up included)`;

    const local = await startLocalApp(platform, {
      port: 0,
      adminKey: LOCAL.adminKey,
      functionKey: LOCAL.functionKey,
      runQueues: false,
      runTimers: false,
    });
    const host = local.host;
    try {
      await runLoad({ url: `${host.url}/api/health`, concurrency: 50, requests: 500 }); // warm-up
      const r = await runLoad({ url: `${host.url}/api/health`, concurrency: 50, requests: 5000 });
      figures["GET /api/health @50 concurrent: p50"] = fmt(r.p50);
      figures["GET /api/health @50 concurrent: p99"] = fmt(r.p99);
      figures["GET /api/health @50 concurrent: throughput"] =
        `${r.rps.toFixed(0)} req/s (${r.requests} requests, ${r.errors} errors, statuses ${JSON.stringify(r.statuses)})`;
    } finally {
      await local.close();
    }
  } finally {
    await platform.close();
  }
  return figures;
}
