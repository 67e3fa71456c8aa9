/** Supabase's rate-limit signals, shared by the Management API wrapper and the token endpoint. */
import { AppError } from "../errors.js";

/** Seconds until the rate-limit window resets, from `X-RateLimit-Reset` or `Retry-After`. */
export function resetSeconds(headers: Headers | undefined, nowMs = Date.now()): number {
  const raw = headers?.get("x-ratelimit-reset") ?? headers?.get("retry-after") ?? null;
  const n = raw === null ? NaN : Number(raw);
  if (!Number.isFinite(n) || n < 0) return 2;
  // An epoch timestamp rather than a number of seconds.
  if (n > 1e9) return Math.max(0, n - nowMs / 1000);
  return n;
}

/** What our callers get when Supabase keeps rate limiting: 503 with `Retry-After`. */
export function upstreamRateLimited(seconds: number): AppError {
  const wait = Math.max(1, Math.ceil(seconds));
  return new AppError(
    503,
    "upstream_rate_limited",
    `Supabase is rate limiting requests for this organization; try again in ${wait} s.`,
    { retryAfterSeconds: wait },
    { headers: { "retry-after": String(wait) } },
  );
}
