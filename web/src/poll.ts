/**
 * When to ask again about something in flight: soon after it changes, then less and less often
 * while it stays the same, and never once it has ended.
 */
const IN_FLIGHT: ReadonlySet<string> = new Set([
  "Requested",
  "Replacing",
  "Deploying",
  "Configuring",
  "Verifying",
  "Deleting",
]);

/** True while an operation is under way (a state that will change by itself). */
export const isInFlight = (state: string | undefined): boolean =>
  state !== undefined && IN_FLIGHT.has(state);

export interface Backoff {
  /** First delay, ms. */
  base: number;
  factor: number;
  /** Longest delay, ms. */
  max: number;
}

export const POLL_BACKOFF: Backoff = { base: 1000, factor: 1.5, max: 10_000 };

/** Delay before poll number `unchanged` (0-based) of a state that has not changed since. */
export function backoffDelay(unchanged: number, b: Backoff = POLL_BACKOFF): number {
  return Math.min(b.max, Math.round(b.base * b.factor ** Math.max(0, unchanged)));
}

/**
 * A refetch-interval function for TanStack Query: `false` when `key(data)` says nothing is in
 * flight, else a delay that grows with the number of answers since the key last changed.
 */
export function backoffInterval<T>(
  key: (data: T | undefined) => string | undefined,
  b: Backoff = POLL_BACKOFF,
): (query: { state: { data: T | undefined; dataUpdateCount: number } }) => number | false {
  const seen = new WeakMap<object, { key: string; at: number }>();
  return (query) => {
    const k = key(query.state.data);
    if (k === undefined) {
      seen.delete(query);
      return false;
    }
    let entry = seen.get(query);
    if (entry?.key !== k) {
      entry = { key: k, at: query.state.dataUpdateCount };
      seen.set(query, entry);
    }
    return backoffDelay(query.state.dataUpdateCount - entry.at, b);
  };
}
