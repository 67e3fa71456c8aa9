/**
 * Fixed-window rate limits kept in Table storage, so every instance of the app counts together.
 * Used on the routes that cost money or send e-mail. Each key (per session, per org) has its own
 * counter; the first key over its limit answers 429 with Retry-After.
 */
import { setTimeout as sleep } from "node:timers/promises";

import { AppError } from "./errors.js";
import type { Services } from "./services.js";
import { deleteExpiredRows, getEntity, retryOnConflict } from "./storage/tables.js";

export interface RateLimitRule {
  /** What is limited, e.g. "verification". */
  name: string;
  /** e.g. { session: 5, org: 20 } per window. */
  limits: Partial<Record<"session" | "org", number>>;
  windowSeconds: number;
}

export const RATE_LIMITS = {
  verification: { name: "verification", limits: { session: 5, org: 20 }, windowSeconds: 600 },
  provisioning: { name: "provisioning", limits: { session: 20, org: 60 }, windowSeconds: 600 },
  checkout: { name: "checkout", limits: { session: 10, org: 30 }, windowSeconds: 600 },
  grafanaSession: {
    name: "grafanaSession",
    limits: { session: 60, org: 600 },
    windowSeconds: 600,
  },
} as const satisfies Record<string, RateLimitRule>;

/** Enough rounds for a burst of concurrent requests on one counter to all be counted. */
const MAX_ATTEMPTS = 60;

interface CounterEntity {
  partitionKey: string;
  rowKey: string;
  count: number;
  expiresAt: Date;
}

async function take(
  services: Services,
  key: string,
  windowStart: number,
  windowEnd: Date,
  limit: number,
): Promise<boolean> {
  const table = services.tables.client("rateLimits");
  const rowKey = String(windowStart);
  return retryOnConflict(
    async () => {
      const current = await getEntity<CounterEntity>(table, key, rowKey);
      if (current && current.count >= limit) return false;
      if (!current) {
        await table.createEntity<CounterEntity>({
          partitionKey: key,
          rowKey,
          count: 1,
          expiresAt: windowEnd,
        });
      } else {
        await table.updateEntity({ partitionKey: key, rowKey, count: current.count + 1 }, "Merge", {
          etag: current.etag,
        });
      }
      return true;
    },
    {
      rounds: MAX_ATTEMPTS,
      // Lost a race with another request: read again after a short, jittered pause.
      pause: () => sleep(2 + Math.random() * 20),
      // Sustained contention on one counter past this many rounds is itself a sign of abuse.
      exhausted: () => false,
    },
  );
}

/** Deletes counters of windows that ended before `cutoff` (at most `max`); returns how many. */
export const purgeExpiredWindows = (services: Services, cutoff: Date, max: number) =>
  deleteExpiredRows(services.tables.client("rateLimits"), cutoff, max);

/** Counts one request against every key; throws 429 when any key is over its limit. */
export async function enforceRateLimit(
  services: Services,
  rule: RateLimitRule,
  keys: Partial<Record<"session" | "org", string>>,
): Promise<void> {
  const now = services.clock.now().getTime();
  const windowMs = rule.windowSeconds * 1000;
  const windowStart = Math.floor(now / windowMs) * windowMs;
  const windowEnd = new Date(windowStart + windowMs);
  for (const scope of ["session", "org"] as const) {
    const limit = rule.limits[scope];
    const id = keys[scope];
    if (limit === undefined || id === undefined) continue;
    const key = `${rule.name}:${scope}:${id}`.replace(/[/\\#?]/g, "_");
    if (!(await take(services, key, windowStart, windowEnd, limit))) {
      const retryAfter = Math.max(1, Math.ceil((windowEnd.getTime() - now) / 1000));
      throw new AppError(
        429,
        "rate_limited",
        `Too many ${rule.name} requests for this ${scope}; try again in ${retryAfter} s.`,
        { retryAfterSeconds: retryAfter, scope },
        { headers: { "retry-after": String(retryAfter) } },
      );
    }
  }
}
