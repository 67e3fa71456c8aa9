import { describe, expect, it } from "vitest";

import { MAX_DELAY_MS, retryDelayMs } from "../../../lib/provisioning/backoff.js";

describe("retryDelayMs", () => {
  it("when failures repeat, then the delay doubles within [exp/2, exp]", () => {
    const low = (n: number) => retryDelayMs(n, { baseMs: 1000, random: () => 0 });
    const high = (n: number) => retryDelayMs(n, { baseMs: 1000, random: () => 0.999999 });
    expect([1, 2, 3, 4].map(low)).toEqual([500, 1000, 2000, 4000]);
    expect([1, 2, 3, 4].map(high)).toEqual([1000, 2000, 4000, 8000]);
  });

  it("when the jitter is random, then two retries rarely wait the same", () => {
    const delays = new Set(Array.from({ length: 50 }, () => retryDelayMs(5, { baseMs: 1000 })));
    expect(delays.size).toBeGreaterThan(10);
    for (const d of delays) {
      expect(d).toBeGreaterThanOrEqual(8000);
      expect(d).toBeLessThanOrEqual(16000);
    }
  });

  it("when the service asks for a longer wait, then Retry-After wins", () => {
    expect(retryDelayMs(1, { baseMs: 1000, retryAfterMs: 7000, random: () => 0.5 })).toBe(7000);
    expect(retryDelayMs(1, { baseMs: 1000, retryAfterMs: 100, random: () => 0 })).toBe(500);
  });

  it("when failures pile up or Retry-After is huge, then the delay stays inside the duplicate-detection window", () => {
    expect(retryDelayMs(60, { baseMs: 15_000, random: () => 0.99 })).toBeLessThanOrEqual(
      MAX_DELAY_MS,
    );
    expect(retryDelayMs(1, { baseMs: 1000, retryAfterMs: 3600_000 })).toBe(MAX_DELAY_MS);
    expect(MAX_DELAY_MS).toBeLessThan(10 * 60_000);
  });
});
