/**
 * Grafana sign-in figures:
 * - the gateway's added latency per proxied request with session-cookie verification: a real
 *   nginx with the njs module (the rendered config, TLS, keep-alive) in front of the local
 *   Grafana stand-in, against the stand-in directly, and against the same gateway without the
 *   sign-in (what the verification itself costs). Requests are sent one at a time and the three
 *   paths interleaved, so machine noise hits them alike; 2,000 requests each;
 * - ticket issue latency: `POST /api/projects/{ref}/grafana/session` over HTTP against the local
 *   function host (membership read through the cached Supabase client, rate limit, signing).
 */
import { randomBytes, randomUUID } from "node:crypto";
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { cpus, loadavg } from "node:os";

import { definitions as grafana } from "../../functions/grafana.js";
import { bindUser, SESSION_COOKIE, startSession } from "../../lib/auth/session.js";
import { GATEWAY_SESSION_COOKIE } from "../../lib/gateway/signin-njs.js";
import { signToken, type SigninKeySet } from "../../lib/grafana-signin/token.js";
import { createInstance } from "../../lib/instances/store.js";
import { LOCAL } from "../../local/defaults.js";
import { startFunctionHost } from "../../local/function-host.js";
import { startPlatform } from "../../local/platform.js";
import { connectOrg } from "../helpers/org.js";
import { SIGNIN_DOMAIN, startSigninGateway } from "../helpers/signin-gateway.js";
import { fmt, percentile } from "./load.js";

const REQUESTS = 2_000;
const WARMUP = 200;
const REF = "benchsigninrefabcdef";
const ISSUES = 250;

function directGet(agent: HttpAgent, port: number, headers: Record<string, string>) {
  return new Promise<number>((resolve, reject) => {
    const started = performance.now();
    const req = httpRequest(
      { agent, host: "127.0.0.1", port, path: "/api/health", headers },
      (res) => {
        res.resume();
        res.on("end", () =>
          res.statusCode === 200
            ? resolve(performance.now() - started)
            : reject(new Error(`direct: ${res.statusCode}`)),
        );
      },
    );
    req.on("error", reject);
    req.end();
  });
}

function summary(latencies: number[]) {
  const sorted = [...latencies].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

async function gatewayFigures(): Promise<Record<string, string>> {
  const keys: SigninKeySet = {
    current: "bench-1",
    keys: new Map([["bench-1", new Uint8Array(randomBytes(32))]]),
  };
  // One worker each, so the figures are per request, not a contest between workers.
  const withSignin = await startSigninGateway({ refs: [REF], keys, workers: 1 });
  const without = await startSigninGateway({ refs: [REF], keys, workers: 1, signin: false });
  try {
    const host = `${REF}.${SIGNIN_DOMAIN}`;
    const now = Math.floor(Date.now() / 1000);
    const cookie = signToken(keys, {
      typ: "session",
      aud: REF,
      sub: "bench-user",
      email: "bench@example.com",
      name: "bench",
      role: "Viewer",
      org: "bench",
      iat: now,
      exp: now + 3600,
    });
    const identity = {
      "x-webauth-user": "bench-user",
      "x-webauth-email": "bench@example.com",
      "x-webauth-name": "bench",
      "x-webauth-role": "Viewer",
    };
    const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
    const tlsSigned = new HttpsAgent({ keepAlive: true, maxSockets: 1 });
    const tlsPlain = new HttpsAgent({ keepAlive: true, maxSockets: 1 });
    const viaGateway = async (
      gw: typeof withSignin,
      agent: HttpsAgent,
      h: Record<string, string>,
    ) => {
      const started = performance.now();
      const res = await gw.get(host, "/api/health", h, agent);
      if (res.status !== 200) throw new Error(`gateway: ${res.status} ${res.body.slice(0, 200)}`);
      return performance.now() - started;
    };
    const signed = { cookie: `${GATEWAY_SESSION_COOKIE}=${cookie}` };
    const direct: number[] = [];
    const plain: number[] = [];
    const verified: number[] = [];
    for (let i = 0; i < WARMUP + REQUESTS; i++) {
      const d = await directGet(httpAgent, withSignin.standIn.port, identity);
      const p = await viaGateway(without, tlsPlain, {});
      const v = await viaGateway(withSignin, tlsSigned, signed);
      if (i >= WARMUP) {
        direct.push(d);
        plain.push(p);
        verified.push(v);
      }
    }
    httpAgent.destroy();
    tlsSigned.destroy();
    tlsPlain.destroy();
    const seen = withSignin.standIn.seen.at(-1)?.identity;
    if (seen?.login !== "bench-user") throw new Error("the stand-in did not get the identity");
    const d = summary(direct);
    const p = summary(plain);
    const v = summary(verified);
    return {
      [`direct to the stand-in (HTTP), ${REQUESTS} requests: p50 / p99`]: `${fmt(d.p50)} / ${fmt(d.p99)}`,
      "through the gateway (TLS, keep-alive), no sign-in: p50 / p99": `${fmt(p.p50)} / ${fmt(p.p99)}`,
      "through the gateway with cookie verification: p50 / p99": `${fmt(v.p50)} / ${fmt(v.p99)}`,
      "gateway added latency with verification (vs direct): p50 / p99 (target p99 <= 2 ms)": `${fmt(v.p50 - d.p50)} / ${fmt(v.p99 - d.p99)}`,
      "cookie verification alone (vs the same gateway without it): p50 / p99": `${fmt(v.p50 - p.p50)} / ${fmt(v.p99 - p.p99)}`,
    };
  } finally {
    await Promise.all([withSignin.stop(), without.stop()]);
  }
}

async function issueFigures(): Promise<Record<string, string>> {
  const platform = await startPlatform({ sandbox: true });
  try {
    const supabase = platform.supabase;
    if (!supabase) throw new Error("the Supabase simulator did not start");
    const org = await connectOrg(platform.services, supabase, { projects: 1 });
    const ref = org.refs[0] ?? "";
    const now = new Date();
    await createInstance(platform.services, {
      org: org.slug,
      ref,
      state: "Running",
      operationId: randomUUID(),
      operation: "provision",
      step: "verify",
      attempts: 0,
      operationStartedAt: now,
      plan: "paid",
      privateIp: "10.0.0.4",
      createdAt: now,
      updatedAt: now,
    });
    // Several members' sessions, so the per-session rate limit (60 per 10 min) is not the bottleneck.
    const cookies: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { session, cookie } = await startSession(platform.services, org.slug);
      await bindUser(platform.services, session.id, { id: org.userId, name: "ada", role: "Owner" });
      cookies.push(`${SESSION_COOKIE}=${cookie.value}`);
    }
    const host = await startFunctionHost(grafana, platform.services, {
      port: 0,
      adminKey: LOCAL.adminKey,
      functionKey: LOCAL.functionKey,
      runQueues: false,
      runTimers: false,
    });
    try {
      const origin = new URL(platform.config.PUBLIC_BASE_URL).origin;
      const latencies: number[] = [];
      for (let i = 0; i < ISSUES; i++) {
        const started = performance.now();
        const res = await fetch(`${host.url}/api/projects/${ref}/grafana/session`, {
          method: "POST",
          headers: { cookie: cookies[i % cookies.length] ?? "", origin },
        });
        const body = (await res.json()) as { url?: string };
        if (res.status !== 200 || !body.url) throw new Error(`issue: ${res.status}`);
        if (i >= 10) latencies.push(performance.now() - started);
      }
      const s = summary(latencies);
      return {
        [`ticket issue, POST /grafana/session over HTTP, ${latencies.length} sequential: p50 / p99`]: `${fmt(s.p50)} / ${fmt(s.p99)}`,
      };
    } finally {
      await host.close();
    }
  } finally {
    await platform.close();
  }
}

export async function benchGatewaySignin(): Promise<Record<string, string | number>> {
  const before = loadavg()[0] ?? 0;
  const figures = { ...(await gatewayFigures()), ...(await issueFigures()) };
  return {
    ...figures,
    // p99 on a shared machine is mostly scheduling: say how busy it was.
    "machine load average (1 min) before / after, cores": `${before.toFixed(1)} / ${(loadavg()[0] ?? 0).toFixed(1)}, ${cpus().length}`,
  };
}

// `tsx test/bench/gateway-signin.ts` runs this section alone.
if (import.meta.url === `file://${process.argv[1] ?? ""}`) {
  const figures = await benchGatewaySignin();
  for (const [k, v] of Object.entries(figures)) console.log(`  ${k}  ${v}`);
}
