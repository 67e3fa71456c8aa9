/**
 * Liveness with dependency checks. Results are cached for a moment and computed single-flight,
 * so a burst of probes costs one round trip per dependency.
 */
import type { Services } from "./services.js";

export interface DependencyStatus {
  status: "ok" | "failing";
  latencyMs: number;
  error?: string;
}

export interface HealthReport {
  status: "ok" | "degraded";
  checks: { storage: DependencyStatus; serviceBus: DependencyStatus };
}

const CACHE_MS = 2000;
const TIMEOUT_MS = 5000;

async function timed(fn: () => Promise<void>): Promise<DependencyStatus> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      fn(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(new Error(`no answer within ${TIMEOUT_MS} ms`));
        }, TIMEOUT_MS);
      }),
    ]);
    return { status: "ok", latencyMs: Math.round(performance.now() - started) };
  } catch (err) {
    return {
      status: "failing",
      latencyMs: Math.round(performance.now() - started),
      // Only the error's class and message: never connection strings or tokens.
      error: err instanceof Error ? `${err.name}: ${err.message.split("\n")[0] ?? ""}` : "unknown",
    };
  } finally {
    clearTimeout(timer);
  }
}

export function checkHealth(services: Services): Promise<HealthReport> {
  const state = services.memo("health", () => ({
    at: 0,
    inflight: undefined as Promise<HealthReport> | undefined,
    last: undefined as HealthReport | undefined,
  }));
  const now = Date.now();
  if (state.last && now - state.at < CACHE_MS) return Promise.resolve(state.last);
  state.inflight ??= (async () => {
    const [storage, serviceBus] = await Promise.all([
      timed(() => services.tables.ping()),
      timed(() => services.bus.ping("provisioning")),
    ]);
    const report: HealthReport = {
      status: storage.status === "ok" && serviceBus.status === "ok" ? "ok" : "degraded",
      checks: { storage, serviceBus },
    };
    state.last = report;
    state.at = Date.now();
    return report;
  })().finally(() => {
    state.inflight = undefined;
  });
  return state.inflight;
}
