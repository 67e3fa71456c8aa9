/**
 * Removes rows whose time is over: ended sessions, unused OAuth states, past rate-limit windows,
 * each through its table's module. Runs in the reconciler; bounded per run so a large backlog
 * drains over a few runs.
 */
import { purgeExpiredStates } from "./auth/oauth.js";
import { purgeExpiredSessions } from "./auth/session.js";
import { purgeExpiredWindows } from "./rate-limit.js";
import type { Services } from "./services.js";

/** Rows are kept this long past their expiry (a request racing the expiry still finds them). */
const GRACE_MS = 60 * 60_000;
const MAX_PER_TABLE = 1000;

export async function purgeExpiredRows(services: Services): Promise<Record<string, number>> {
  const cutoff = new Date(services.clock.now().getTime() - GRACE_MS);
  return {
    sessions: await purgeExpiredSessions(services, cutoff, MAX_PER_TABLE),
    oauthStates: await purgeExpiredStates(services, cutoff, MAX_PER_TABLE),
    rateLimits: await purgeExpiredWindows(services, cutoff, MAX_PER_TABLE),
  };
}
