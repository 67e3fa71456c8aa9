/**
 * Bad input never answers 5xx: malformed escapes, unknown orgs, signed but malformed Stripe
 * events and oversized bodies get their documented 4xx, and a property test sends random paths,
 * bytes and JSON to every route of the shipped bundle (`dist/`, through the worker contract).
 */
import { createHmac } from "node:crypto";

import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import type { LocalApp } from "../../local/app-host.js";
import { LOCAL } from "../../local/defaults.js";
import type { Platform } from "../../local/platform.js";
import { randomSlug, startTestApp, startTestPlatform } from "../helpers/platform.js";

interface OpenApi {
  paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
}

describe("bad input through the shipped bundle", () => {
  let platform: Platform;
  let local: LocalApp;
  let base = "";
  let openapi: OpenApi;

  beforeAll(async () => {
    platform = await startTestPlatform();
    local = await startTestApp(platform);
    base = local.host.url;
    openapi = (await (await fetch(`${base}/api/openapi.json`)).json()) as OpenApi;
  });
  afterAll(async () => {
    await local.close();
    await platform.close();
  });

  const send = async (
    method: string,
    path: string,
    init: { body?: Uint8Array | string; headers?: Record<string, string>; admin?: boolean } = {},
  ) => {
    const res = await fetch(`${base}${path}`, {
      method,
      redirect: "manual",
      headers: {
        origin: platform.config.PUBLIC_BASE_URL,
        ...(init.admin ? { "x-functions-key": LOCAL.adminKey, "x-ops-actor": "fuzz" } : {}),
        ...init.headers,
      },
      ...(init.body !== undefined && method !== "GET" ? { body: init.body } : {}),
    });
    const text = await res.text();
    return { status: res.status, text };
  };

  it("when a path segment holds a malformed percent-escape, then the answer is a 4xx", async () => {
    for (const segment of ["%ZZ", "%c0%ae%c0%ae", "%", "%e2%82", "%00"]) {
      // Without a session the caller is refused before anything of the request is read.
      const r = await send("GET", `/api/projects/${segment}/grafana`);
      expect(r.status, `${segment}: ${r.text}`).toBe(401);
      expect(JSON.parse(r.text)).toMatchObject({ error: { code: "unauthenticated" } });
      const ops = await send("POST", `/api/ops/instances/${segment}/${segment}/retry`, {
        admin: true,
      });
      expect(ops.status, ops.text).toBe(400);
      expect(JSON.parse(ops.text)).toMatchObject({ error: { code: "validation_failed" } });
      const admin = await send("POST", `/admin/functions/${segment}`, { admin: true });
      expect(admin.status, admin.text).toBe(404);
    }
  });

  it("when free instances are granted to an org that never connected, then it is a 404", async () => {
    const r = await send("PUT", `/api/ops/orgs/${randomSlug()}/free-instances`, {
      admin: true,
      body: JSON.stringify({ count: 2 }),
      headers: { "content-type": "application/json" },
    });
    expect(r.status, r.text).toBe(404);
    expect(JSON.parse(r.text)).toMatchObject({ error: { code: "not_found" } });
  });

  it("when a correctly signed Stripe delivery is not a usable event, then it is a 400", async () => {
    const sign = (payload: string) => {
      const t = Math.floor(Date.now() / 1000);
      const v1 = createHmac("sha256", LOCAL.stripeWebhookSecret)
        .update(`${t}.${payload}`)
        .digest("hex");
      return `t=${t},v1=${v1}`;
    };
    for (const payload of [
      "null",
      "[]",
      '"text"',
      JSON.stringify({ id: "evt_1", type: "invoice.paid" }),
      JSON.stringify({ id: "evt_2", type: "invoice.paid", data: null }),
      JSON.stringify({ id: "evt_3", type: "invoice.paid", data: { object: null } }),
    ]) {
      const r = await send("POST", "/api/webhooks/stripe", {
        body: payload,
        headers: { "stripe-signature": sign(payload), "content-type": "application/json" },
      });
      expect(r.status, `${payload}: ${r.text}`).toBe(400);
    }
  });

  it("when a body is larger than allowed, then it is a 413, and the contract documents 413", async () => {
    const big = JSON.stringify({ userId: "x".repeat(70_000) });
    const r = await send("POST", "/api/me/verification", {
      body: big,
      headers: { "content-type": "application/json" },
    });
    // Without a session the route may refuse earlier; it must never be a 5xx.
    expect([401, 413]).toContain(r.status);
    const ops = await send("PUT", `/api/ops/orgs/${randomSlug()}/free-instances`, {
      admin: true,
      body: big,
      headers: { "content-type": "application/json" },
    });
    expect(ops.status, ops.text).toBe(413);
    for (const [path, methods] of Object.entries(openapi.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        const hasBody = "requestBody" in (op as object);
        if (hasBody) expect(Object.keys(op.responses), `${method} ${path}`).toContain("413");
      }
    }
  });

  it("when random paths, bytes and JSON reach every route, then nothing answers 5xx", async () => {
    const routes = Object.entries(openapi.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((method) => ({ method: method.toUpperCase(), path })),
    );
    expect(routes.length).toBeGreaterThan(20);
    const segment = fc.oneof(
      fc.string({ maxLength: 30 }).map(encodeURIComponent),
      fc.stringMatching(/^[a-z]{20}$/),
      fc.stringMatching(/^(%[0-9A-Za-z]{0,2}|[a-z.~-]){1,12}$/),
      fc.constantFrom("..", "%2e%2e", "%2F", "%ZZ", "%c0%ae", "%u0041", "a%00b"),
    );
    const body = fc.oneof(
      fc.json().map((j) => ({ text: j, type: "application/json" })),
      fc.uint8Array({ maxLength: 256 }).map((b) => ({ text: b, type: "application/octet-stream" })),
      fc.string({ maxLength: 200 }).map((s) => ({ text: s, type: "text/plain" })),
      fc.constant(undefined),
    );
    const failures: string[] = [];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...routes),
        fc.array(segment, { minLength: 6, maxLength: 6 }),
        body,
        fc.boolean(),
        fc.option(fc.string({ maxLength: 60 }), { nil: undefined }),
        async (route, segments, payload, admin, cookie) => {
          let i = 0;
          const path = route.path.replace(/\{[^}]+\}/g, () => segments[i++] ?? "x");
          const r = await send(route.method, `/api${path}`, {
            admin,
            ...(payload
              ? {
                  body: payload.text,
                  headers: {
                    "content-type": payload.type,
                    ...(cookie ? { cookie: `__Host-supafana_session=${cookie}` } : {}),
                  },
                }
              : {}),
          });
          if (r.status >= 500) failures.push(`${route.method} ${path} -> ${r.status} ${r.text}`);
          return r.status < 500;
        },
      ),
      { numRuns: 400, seed: 20261202 },
    );
    expect(failures).toEqual([]);
  }, 120_000);
});
