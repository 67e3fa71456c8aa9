/**
 * Connect figures, over HTTP against the local function host (in-memory Azurite, emulator,
 * simulators with no added latency):
 * - Management API calls per `GET /api/projects` over 100 page loads of one org (a page load is
 *   `GET /api/me` + `GET /api/projects`, back to back);
 * - `GET /api/projects` latency for an org with 100 projects at 50 concurrent requests.
 */
import { startLocalApp } from "../../local/app-host.js";
import { LOCAL } from "../../local/defaults.js";
import { startPlatform } from "../../local/platform.js";
import type { SimOrg, SupabaseSimulator } from "../../local/simulators/supabase.js";
import { fmt, runLoad } from "./load.js";

const PAGE_LOADS = 100;

function letters(n: number, seed: number): string {
  let out = "";
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    out += String.fromCharCode(97 + (x % 26));
  }
  return out;
}

function bigOrg(): SimOrg {
  return {
    slug: "bench-hundred",
    name: "Bench (100 projects)",
    members: [
      {
        user_id: "bench-owner",
        user_name: "owner",
        email: "owner@bench.example",
        role_name: "Owner",
        mfa_enabled: false,
      },
    ],
    projects: Array.from({ length: 100 }, (_, i) => ({
      ref: letters(20, i + 1),
      name: `Project ${String(i + 1).padStart(3, "0")}`,
      region: "us-east-1",
      status: "ACTIVE_HEALTHY",
    })),
  };
}

const cookieOf = (res: Response) => res.headers.getSetCookie().map((c) => c.split(";")[0] ?? "");

/** Connects `orgSlug` through the real routes; returns the session cookie header. */
async function signIn(
  hostUrl: string,
  supabase: SupabaseSimulator,
  orgSlug: string,
): Promise<string> {
  const login = await fetch(`${hostUrl}/api/auth/login?returnTo=/`, { redirect: "manual" });
  const authorize = new URL(login.headers.get("location") ?? "");
  const callback = new URL(supabase.authorize(authorize.searchParams, orgSlug));
  const res = await fetch(`${hostUrl}${callback.pathname}${callback.search}`, {
    redirect: "manual",
    headers: { cookie: cookieOf(login).join("; ") },
  });
  const session = cookieOf(res).find(
    (c) => c.startsWith("__Host-supafana_session=") && !c.endsWith("="),
  );
  if (res.status !== 302 || !session)
    throw new Error(`sign-in failed: ${res.status} ${res.headers.get("location")}`);
  return session;
}

export async function benchConnect(): Promise<Record<string, string | number>> {
  const figures: Record<string, string | number> = {};
  const platform = await startPlatform({ sandbox: true });
  try {
    const supabase = platform.supabase;
    if (!supabase) throw new Error("the Supabase simulator did not start");
    const local = await startLocalApp(platform, {
      port: 0,
      adminKey: LOCAL.adminKey,
      functionKey: LOCAL.functionKey,
      runQueues: false,
      runTimers: false,
    });
    const host = local.host;
    try {
      // 1. Management API calls per page load, one org (the demo org).
      const cookie = await signIn(host.url, supabase, "demo-org");
      const get = async (path: string) => {
        const res = await fetch(`${host.url}${path}`, { headers: { cookie } });
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`${path} answered ${res.status}`);
      };
      const start = supabase.stats().managementCalls;
      let worst = 0;
      for (let i = 0; i < PAGE_LOADS; i++) {
        const before = supabase.stats().managementCalls;
        await Promise.all([get("/api/me"), get("/api/projects")]);
        worst = Math.max(worst, supabase.stats().managementCalls - before);
      }
      const total = supabase.stats().managementCalls - start;
      figures["Management API calls per GET /api/projects, 100 page loads (target <= 0.1 avg)"] = (
        total / PAGE_LOADS
      ).toFixed(2);
      figures["Management API calls, worst single page load (target <= 1)"] = worst;

      // 2. Latency for an org with 100 projects at 50 concurrent.
      const org = bigOrg();
      supabase.addOrg(org);
      const bigCookie = await signIn(host.url, supabase, org.slug);
      const url = `${host.url}/api/projects`;
      const headers = { cookie: bigCookie };
      await runLoad({ url, concurrency: 50, requests: 200, headers }); // warm-up
      const calls = supabase.stats().managementCalls;
      const r = await runLoad({ url, concurrency: 50, requests: 2000, headers });
      figures["GET /api/projects (100 projects) @50 concurrent: p50"] = fmt(r.p50);
      figures["GET /api/projects (100 projects) @50 concurrent: p99"] = fmt(r.p99);
      figures["GET /api/projects (100 projects) @50 concurrent: throughput"] =
        `${r.rps.toFixed(0)} req/s (${r.requests} requests, ${r.errors} errors, statuses ${JSON.stringify(r.statuses)}, ${supabase.stats().managementCalls - calls} Management API calls)`;
    } finally {
      await local.close();
    }
  } finally {
    await platform.close();
  }
  return figures;
}

// `tsx test/bench/connect.ts` runs this section alone.
if (import.meta.url === `file://${process.argv[1] ?? ""}`) {
  const figures = await benchConnect();
  for (const [k, v] of Object.entries(figures)) console.log(`  ${k}  ${v}`);
}
