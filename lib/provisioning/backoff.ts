/**
 * Retry delays: exponential with jitter, at least what the service asked for (`Retry-After`),
 * and never longer than the queue's duplicate-detection window allows (a continuation must stay
 * recognisable as a duplicate while it waits).
 */
export const MAX_DELAY_MS = 5 * 60_000;

export interface BackoffOptions {
  /** Delay of the first retry. */
  baseMs: number;
  maxMs?: number;
  /** What the service asked for. */
  retryAfterMs?: number | undefined;
  /** [0, 1); injectable for tests. */
  random?: () => number;
}

/** Delay before retry number `failures` (1 = first retry): "equal jitter" in [exp/2, exp]. */
export function retryDelayMs(failures: number, opts: BackoffOptions): number {
  const max = Math.min(opts.maxMs ?? MAX_DELAY_MS, MAX_DELAY_MS);
  const n = Math.max(1, Math.floor(failures));
  const exp = Math.min(max, opts.baseMs * 2 ** Math.min(n - 1, 30));
  const random = opts.random ?? Math.random;
  const jittered = exp / 2 + random() * (exp / 2);
  const asked = Math.min(opts.retryAfterMs ?? 0, max);
  return Math.round(Math.min(max, Math.max(jittered, asked)));
}
