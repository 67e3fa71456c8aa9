/**
 * A small in-process cache with a time to live and single-flight loading: concurrent misses of
 * one key share one load, and a failed load is not cached. Bounded: the oldest entries go first.
 */
import type { Clock } from "../services.js";

interface Entry<T> {
  value?: T;
  expiresAt: number;
  loading?: Promise<T>;
}

export class TtlCache<T> {
  private readonly entries = new Map<string, Entry<T>>();

  constructor(
    private readonly clock: Clock,
    private readonly maxEntries = 1000,
  ) {}

  async get(key: string, ttlMs: number, load: () => Promise<T>): Promise<T> {
    const now = this.clock.now().getTime();
    const hit = this.entries.get(key);
    if (hit?.loading) return hit.loading;
    if (hit && "value" in hit && hit.expiresAt > now) return hit.value as T;
    const entry: Entry<T> = { expiresAt: 0 };
    entry.loading = load().then(
      (value) => {
        if (this.entries.get(key) === entry) {
          entry.value = value;
          entry.expiresAt = this.clock.now().getTime() + ttlMs;
          delete entry.loading;
        }
        return value;
      },
      (err: unknown) => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
        throw err;
      },
    );
    this.entries.delete(key);
    this.entries.set(key, entry);
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
    return entry.loading;
  }

  /** The cached value if it is still fresh, without loading. */
  peek(key: string): T | undefined {
    const hit = this.entries.get(key);
    return hit && "value" in hit && hit.expiresAt > this.clock.now().getTime()
      ? hit.value
      : undefined;
  }

  /** Forgets every key that starts with `prefix`. */
  dropPrefix(prefix: string): void {
    for (const key of [...this.entries.keys()])
      if (key.startsWith(prefix)) this.entries.delete(key);
  }
}
