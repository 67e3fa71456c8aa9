/**
 * Rate limits on the routes that cost money or send e-mail: per session and per org, counted in
 * Table storage (so every instance of the app shares them), answered 429 with Retry-After.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { allDefinitions } from "../../functions/all.js";
import { AppError } from "../../lib/errors.js";
import { enforceRateLimit, RATE_LIMITS } from "../../lib/rate-limit.js";
import { createServices, type Clock } from "../../lib/services.js";
import { randomTablePrefix, type Platform } from "../../local/platform.js";
import { connectOrg } from "../helpers/org.js";
import { TestClient } from "../helpers/client.js";
import { randomSlug, startTestPlatform } from "../helpers/platform.js";

describe("rate limits", () => {
  let platform: Platform;
  beforeAll(async () => {
    platform = await startTestPlatform();
  });
  afterAll(async () => {
    await platform.close();
  });

  it("when a session goes over its limit, then it gets 429 with Retry-After until the window turns", async () => {
    let now = new Date("2026-03-01T10:00:05Z");
    const clock: Clock = { now: () => now };
    const services = createServices(platform.config, { clock, tablePrefix: randomTablePrefix() });
    await services.tables.ensure();
    const rule = { name: "test", limits: { session: 3 }, windowSeconds: 60 };
    try {
      for (let i = 0; i < 3; i++) await enforceRateLimit(services, rule, { session: "s1" });
      const err = await enforceRateLimit(services, rule, { session: "s1" }).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(AppError);
      expect((err as AppError).status).toBe(429);
      expect((err as AppError).headers?.["retry-after"]).toBe("55");
      // Another session is not affected.
      await enforceRateLimit(services, rule, { session: "s2" });
      // The next window starts afresh.
      now = new Date("2026-03-01T10:01:00Z");
      await enforceRateLimit(services, rule, { session: "s1" });
    } finally {
      await services.close();
    }
  });

  it("when many sessions of one org add up past the org limit, then the org is limited", async () => {
    const rule = {
      name: `org-${randomSlug()}`,
      limits: { session: 100, org: 4 },
      windowSeconds: 600,
    };
    const org = randomSlug();
    await Promise.all(
      [1, 2, 3, 4].map((n) => enforceRateLimit(platform.services, rule, { session: `s${n}`, org })),
    );
    await expect(
      enforceRateLimit(platform.services, rule, { session: "s9", org }),
    ).rejects.toMatchObject({
      status: 429,
      details: { scope: "org" },
    });
  });

  it("when concurrent requests race on one counter, then exactly the limit gets through", async () => {
    const rule = { name: `race-${randomSlug()}`, limits: { session: 5 }, windowSeconds: 600 };
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, () =>
        enforceRateLimit(platform.services, rule, { session: "same" }),
      ),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(5);
  });

  it("when checkout is requested too often by one session, then the route answers 429 with the error shape", async () => {
    const org = await connectOrg(platform.services, platform.supabase!, { projects: 1 });
    const client = new TestClient(allDefinitions, platform.services);
    client.cookies.set(org.cookie.name, org.cookie.value);
    const limit = RATE_LIMITS.checkout.limits.session;
    for (let i = 0; i < limit; i++) {
      const res = await client.post("/api/billing/checkout", { body: {} });
      expect(res.status, res.text).toBe(200);
    }
    const res = await client.post("/api/billing/checkout", { body: {} });
    expect(res.status).toBe(429);
    expect(res.body.error.code).toBe("rate_limited");
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
  });
});
