import { describe, expect, it } from "vitest";

import { TtlCache } from "../../../lib/supabase/cache.js";
import { resetSeconds } from "../../../lib/supabase/rate-limit.js";

function manualClock() {
  let t = 1_000_000;
  return { now: () => new Date(t), advance: (ms: number) => (t += ms) };
}

describe("TtlCache", () => {
  it("when many callers miss one key at once, then it loads once and all get the value", async () => {
    const clock = manualClock();
    const cache = new TtlCache<number>(clock);
    let loads = 0;
    let finish!: (v: number) => void;
    const loading = new Promise<number>((resolve) => (finish = resolve));
    const load = () => {
      loads++;
      return loading;
    };
    // Every caller asks while the one load is still pending; then it ends.
    const all = Promise.all(Array.from({ length: 20 }, () => cache.get("k", 1000, load)));
    finish(42);
    const values = await all;
    expect(values.every((v) => v === 42)).toBe(true);
    expect(loads).toBe(1);
  });

  it("when the time to live passes, then it loads again", async () => {
    const clock = manualClock();
    const cache = new TtlCache<number>(clock);
    let n = 0;
    const load = () => Promise.resolve(++n);
    expect(await cache.get("k", 1000, load)).toBe(1);
    clock.advance(999);
    expect(await cache.get("k", 1000, load)).toBe(1);
    clock.advance(2);
    expect(await cache.get("k", 1000, load)).toBe(2);
  });

  it("when a load fails, then the failure is not cached", async () => {
    const cache = new TtlCache<number>(manualClock());
    await expect(cache.get("k", 1000, () => Promise.reject(new Error("boom")))).rejects.toThrow(
      "boom",
    );
    expect(await cache.get("k", 1000, () => Promise.resolve(7))).toBe(7);
  });

  it("when more keys than the bound are cached, then the oldest are dropped", async () => {
    const cache = new TtlCache<number>(manualClock(), 2);
    await cache.get("a", 1000, () => Promise.resolve(1));
    await cache.get("b", 1000, () => Promise.resolve(2));
    await cache.get("c", 1000, () => Promise.resolve(3));
    expect(cache.peek("a")).toBeUndefined();
    expect(cache.peek("c")).toBe(3);
  });

  it("when keys are dropped by prefix, then only those are gone", async () => {
    const cache = new TtlCache<number>(manualClock());
    await cache.get("org1\u0000x", 1000, () => Promise.resolve(1));
    await cache.get("org2\u0000x", 1000, () => Promise.resolve(2));
    cache.dropPrefix("org1\u0000");
    expect(cache.peek("org1\u0000x")).toBeUndefined();
    expect(cache.peek("org2\u0000x")).toBe(2);
  });
});

describe("resetSeconds", () => {
  it("when X-RateLimit-Reset is a number of seconds, then that is the wait", () => {
    expect(resetSeconds(new Headers({ "x-ratelimit-reset": "3" }))).toBe(3);
  });

  it("when it is an epoch timestamp, then the wait is the time until then", () => {
    const now = 1_700_000_000_000;
    expect(resetSeconds(new Headers({ "x-ratelimit-reset": String(now / 1000 + 4) }), now)).toBe(4);
  });

  it("when only Retry-After is present, then it is used; when nothing is, a short default", () => {
    expect(resetSeconds(new Headers({ "retry-after": "7" }))).toBe(7);
    expect(resetSeconds(new Headers({ "x-ratelimit-reset": "soon" }))).toBe(2);
    expect(resetSeconds(undefined)).toBe(2);
  });
});
