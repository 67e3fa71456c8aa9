/**
 * OAuth tokens of each connected organization, kept fresh.
 *
 * The installation row is the truth; each process keeps the decrypted tokens in memory for a
 * short while. A refresh happens shortly before the stored expiry, or after Supabase refused the
 * access token once. Refreshes are single-flight per org:
 * - within a process, concurrent callers share one refresh;
 * - across processes, a refresher first takes a lease on the installation row (an etag-guarded
 *   Merge of `refreshLeaseUntil`); others wait for the new token version to appear.
 * Supabase rotates refresh tokens, so the new refresh token is stored every time (retrying lost
 * races against other writers of the row), and a refusal (400/401) of the refresh grant marks
 * the installation revoked unless a newer token version has appeared meanwhile.
 */
import { AppError } from "../errors.js";
import {
  encryptTokens,
  mergeInstallation,
  NO_LEASE,
  readInstallationTokens,
  type InstallationTokens,
  type StoredTokens,
} from "../installations.js";
import type { Services } from "../services.js";
import { isConflict, retryOnConflict } from "../storage/tables.js";
import { requestTokens, TokenGrantRefused } from "./token-endpoint.js";

/** Refresh this long before the stored expiry. */
const EXPIRY_SKEW_MS = 60_000;
/** Re-read the row at least this often even while the token is valid. */
const MEMORY_TTL_MS = 5 * 60_000;
/** How long a refresher may hold the row's lease (longer than the token request's timeout). */
const LEASE_MS = 15_000;
const POLL_MS = 100;
/** How long a process waits for another one's refresh before giving up. */
const MAX_WAIT_MS = 20_000;
const STORE_ATTEMPTS = 6;

export interface HeldToken {
  accessToken: string;
  /** The installation's `tokenVersion` this token belongs to. */
  version: number;
}

interface Held extends HeldToken {
  expiresAt: number;
  loadedAt: number;
}

interface TokenState {
  held: Map<string, Held>;
  refreshing: Map<string, Promise<HeldToken>>;
}

const stateOf = (services: Services): TokenState =>
  services.memo("supabase-tokens", () => ({ held: new Map(), refreshing: new Map() }));

const installationRevoked = () =>
  new AppError(
    401,
    "installation_revoked",
    "Supafana's access to this Supabase organization was revoked or has lapsed; connect the organization again.",
  );

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nowMs = (services: Services) => services.clock.now().getTime();
const expiringSoon = (expiresAt: number, now: number) => expiresAt - EXPIRY_SKEW_MS <= now;

function remember(
  services: Services,
  org: string,
  tokens: StoredTokens,
  version: number,
): HeldToken {
  const held: Held = {
    accessToken: tokens.accessToken,
    version,
    expiresAt: Date.parse(tokens.expiresAt),
    loadedAt: nowMs(services),
  };
  stateOf(services).held.set(org, held);
  return { accessToken: held.accessToken, version };
}

/** Drops what this process holds for an org (after a revocation or a reconnect). */
export function forgetTokens(services: Services, org: string): void {
  stateOf(services).held.delete(org);
}

/** A usable row: active with decryptable tokens; otherwise the org must reconnect. */
function usable(
  services: Services,
  org: string,
  row: InstallationTokens | undefined,
): asserts row is InstallationTokens & { tokens: StoredTokens } {
  if (!row || row.installation.status !== "active" || !row.tokens) {
    forgetTokens(services, org);
    throw installationRevoked();
  }
}

/** An access token for the org, refreshed first when it is about to expire. */
export async function accessToken(services: Services, org: string): Promise<HeldToken> {
  const now = nowMs(services);
  const held = stateOf(services).held.get(org);
  if (held && now - held.loadedAt < MEMORY_TTL_MS && !expiringSoon(held.expiresAt, now)) {
    return { accessToken: held.accessToken, version: held.version };
  }
  const row = await readInstallationTokens(services, org);
  usable(services, org, row);
  if (expiringSoon(Date.parse(row.tokens.expiresAt), now)) {
    return refreshTokens(services, org, row.installation.tokenVersion);
  }
  return remember(services, org, row.tokens, row.installation.tokenVersion);
}

/**
 * A token newer than `seenVersion` (the one that expired or was refused): another caller's or
 * another process's refresh when there is one, else a refresh of our own.
 */
export async function refreshTokens(
  services: Services,
  org: string,
  seenVersion: number,
): Promise<HeldToken> {
  const { refreshing } = stateOf(services);
  for (;;) {
    const current = refreshing.get(org);
    if (!current) {
      const promise: Promise<HeldToken> = refreshAcrossProcesses(
        services,
        org,
        seenVersion,
      ).finally(() => {
        if (refreshing.get(org) === promise) refreshing.delete(org);
      });
      refreshing.set(org, promise);
      return promise;
    }
    const result = await current;
    if (result.version > seenVersion) return result;
  }
}

async function refreshAcrossProcesses(
  services: Services,
  org: string,
  seenVersion: number,
): Promise<HeldToken> {
  const giveUpAt = Date.now() + MAX_WAIT_MS;
  for (;;) {
    if (Date.now() > giveUpAt) {
      throw new AppError(
        503,
        "unavailable",
        "The Supabase connection is being renewed; try again in a few seconds.",
        { retryAfterSeconds: 5 },
        { headers: { "retry-after": "5" } },
      );
    }
    const row = await readInstallationTokens(services, org);
    usable(services, org, row);
    const now = nowMs(services);
    const { tokenVersion, etag } = row.installation;
    if (tokenVersion > seenVersion && !expiringSoon(Date.parse(row.tokens.expiresAt), now)) {
      return remember(services, org, row.tokens, tokenVersion);
    }
    if (row.leaseUntil && row.leaseUntil.getTime() > now) {
      // Another process is refreshing: wait for its new version (or for its lease to lapse).
      await sleep(POLL_MS);
      continue;
    }
    let leaseEtag: string;
    try {
      leaseEtag = await mergeInstallation(services, org, etag, {
        refreshLeaseUntil: new Date(now + LEASE_MS),
      });
    } catch (err) {
      if (isConflict(err)) continue;
      throw err;
    }
    return refreshHoldingLease(services, org, row, leaseEtag);
  }
}

async function refreshHoldingLease(
  services: Services,
  org: string,
  row: InstallationTokens & { tokens: StoredTokens },
  leaseEtag: string,
): Promise<HeldToken> {
  const version = row.installation.tokenVersion;
  let tokens: StoredTokens;
  try {
    tokens = await requestTokens(services, {
      grant_type: "refresh_token",
      refresh_token: row.tokens.refreshToken,
    });
  } catch (err) {
    if (err instanceof TokenGrantRefused) return revokeUnlessSuperseded(services, org, version);
    await mergeInstallation(services, org, leaseEtag, { refreshLeaseUntil: NO_LEASE }).catch(
      () => undefined,
    );
    throw err;
  }
  // The old refresh token is spent: the new one must reach the row, whoever else writes to it.
  const held = remember(services, org, tokens, version + 1);
  const tokenSecret = await encryptTokens(services, org, tokens);
  let etag = leaseEtag;
  for (let attempt = 1; ; attempt++) {
    try {
      await mergeInstallation(services, org, etag, {
        tokenSecret,
        tokenVersion: version + 1,
        updatedAt: services.clock.now(),
        refreshLeaseUntil: NO_LEASE,
      });
      return held;
    } catch (err) {
      if (attempt >= STORE_ATTEMPTS) throw err;
      if (!isConflict(err)) await sleep(100 * attempt);
      const again = await readInstallationTokens(services, org);
      usable(services, org, again);
      if (again.installation.tokenVersion !== version) {
        // A reconnect replaced the grant meanwhile: its tokens win.
        return remember(services, org, again.tokens, again.installation.tokenVersion);
      }
      etag = again.installation.etag;
    }
  }
}

/** The refresh grant was refused: revoked, unless a newer token version appeared meanwhile. */
async function revokeUnlessSuperseded(
  services: Services,
  org: string,
  version: number,
): Promise<HeldToken> {
  const superseded = await retryOnConflict(async () => {
    const row = await readInstallationTokens(services, org);
    usable(services, org, row);
    if (row.installation.tokenVersion !== version) {
      return remember(services, org, row.tokens, row.installation.tokenVersion);
    }
    await mergeInstallation(services, org, row.installation.etag, {
      status: "revoked",
      updatedAt: services.clock.now(),
      refreshLeaseUntil: NO_LEASE,
    });
    return undefined;
  });
  if (superseded) return superseded;
  forgetTokens(services, org);
  throw installationRevoked();
}
