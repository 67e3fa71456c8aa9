/**
 * The `installations` table: one row per connected Supabase organization (PK = org slug,
 * RK = ""). This module owns the connection fields: `name`, `tokenSecret` (the encrypted
 * `{accessToken, refreshToken, expiresAt}`), `tokenVersion`, `status`, `installedAt`,
 * `updatedAt` and the refresh lease (`refreshLeaseUntil`). Billing merges its
 * own fields into the same row, so every write here is a Merge, never a Replace, and every write
 * that decides something is etag-conditional.
 */
import { z } from "zod";

import { decryptSecret, encryptSecret } from "./secrets.js";
import type { Services } from "./services.js";
import { getEntity, retryOnConflict, safeKey } from "./storage/tables.js";

export type InstallationStatus = "active" | "revoked";

export interface Installation {
  org: string;
  name: string;
  status: InstallationStatus;
  tokenVersion: number;
  installedAt?: Date | undefined;
  updatedAt?: Date | undefined;
  etag: string;
  // Billing's fields (written by lib/billing), read-only here.
  stripeCustomerId?: string | undefined;
  stripeSubscriptionId?: string | undefined;
  subscriptionStatus?: string | undefined;
  subscriptionQuantity?: number | undefined;
  currentPeriodEnd?: Date | undefined;
  paymentFailedAt?: Date | undefined;
  freeInstances?: number | undefined;
}

/** What the token secret decrypts to. `expiresAt` is an ISO timestamp. */
export interface StoredTokens {
  accessToken: string;
  refreshToken: string;
  expiresAt: string;
}

const storedTokensSchema = z.object({
  accessToken: z.string().min(1),
  refreshToken: z.string().min(1),
  expiresAt: z.iso.datetime(),
});

/** The row as stored; every field optional because other writers may create partial rows. */
interface InstallationEntity {
  name?: string;
  tokenSecret?: string;
  tokenVersion?: number;
  status?: string;
  installedAt?: Date;
  updatedAt?: Date;
  refreshLeaseUntil?: Date;
  stripeCustomerId?: string;
  stripeSubscriptionId?: string;
  subscriptionStatus?: string;
  subscriptionQuantity?: number;
  currentPeriodEnd?: Date;
  paymentFailedAt?: Date;
  freeInstances?: number;
}

/** A row read with its secret and lease, for the token manager. */
export interface InstallationTokens {
  installation: Installation;
  /** Undefined when the row has no usable secret (never connected, or not decryptable). */
  tokens: StoredTokens | undefined;
  /** Until when another refresher holds the row (see lib/supabase/tokens.ts). */
  leaseUntil: Date | undefined;
}

const table = (services: Services) => services.tables.client("installations");
const context = (org: string) => `installation:${org}`;
/** Written instead of deleting a property: Table storage has no nulls. */
export const NO_LEASE = new Date(0);

function toInstallation(org: string, e: InstallationEntity & { etag: string }): Installation {
  return {
    org,
    name: e.name ?? org,
    status: e.status === "active" ? "active" : "revoked",
    tokenVersion: e.tokenVersion ?? 0,
    installedAt: e.installedAt,
    updatedAt: e.updatedAt,
    etag: e.etag,
    stripeCustomerId: e.stripeCustomerId,
    stripeSubscriptionId: e.stripeSubscriptionId,
    subscriptionStatus: e.subscriptionStatus,
    subscriptionQuantity: e.subscriptionQuantity,
    currentPeriodEnd: e.currentPeriodEnd,
    paymentFailedAt: e.paymentFailedAt,
    freeInstances: e.freeInstances,
  };
}

export async function getInstallation(
  services: Services,
  org: string,
): Promise<Installation | undefined> {
  const e = await getEntity<InstallationEntity>(table(services), safeKey(org), "");
  return e ? toInstallation(org, e) : undefined;
}

export const encryptTokens = (services: Services, org: string, tokens: StoredTokens) =>
  encryptSecret(services.config.SECRET_KEYS, JSON.stringify(tokens), context(org));

async function decryptTokens(
  services: Services,
  org: string,
  secret: string,
): Promise<StoredTokens | undefined> {
  try {
    const parsed = storedTokensSchema.safeParse(
      JSON.parse(await decryptSecret(services.config.SECRET_KEYS, secret, context(org))),
    );
    return parsed.success ? parsed.data : undefined;
  } catch {
    // A secret whose key was rotated out, or a copied one: treat as no tokens (reconnect).
    return undefined;
  }
}

/** The row with its decrypted tokens and refresh lease (always a fresh read). */
export async function readInstallationTokens(
  services: Services,
  org: string,
): Promise<InstallationTokens | undefined> {
  const e = await getEntity<InstallationEntity>(table(services), safeKey(org), "");
  if (!e) return undefined;
  const tokens = e.tokenSecret ? await decryptTokens(services, org, e.tokenSecret) : undefined;
  const leaseUntil =
    e.refreshLeaseUntil && e.refreshLeaseUntil.getTime() > 0 ? e.refreshLeaseUntil : undefined;
  return { installation: toInstallation(org, e), tokens, leaseUntil };
}

/**
 * Merges `fields` into the row if it still has `etag`; returns the new etag. A lost race throws
 * an error for which `isConflict` is true.
 */
export function mergeInstallation(
  services: Services,
  org: string,
  etag: string,
  fields: Partial<Omit<InstallationEntity, "tokenSecret">> & { tokenSecret?: string },
): Promise<string> {
  return mergeInstallationFields(services, org, fields, etag);
}

/**
 * Merges another module's fields (billing's) into the row: with `etag` only if the row is
 * unchanged (412 otherwise). Fails with 404 when the row does not exist. Returns the new etag.
 */
export async function mergeInstallationFields(
  services: Services,
  org: string,
  fields: Record<string, unknown>,
  etag?: string,
): Promise<string> {
  const res = await table(services).updateEntity(
    { ...fields, partitionKey: safeKey(org), rowKey: "" },
    "Merge",
    etag ? { etag } : undefined,
  );
  if (!res.etag) throw new Error("table storage returned no etag");
  return res.etag;
}

/** The raw row, for modules that keep their own fields in it (billing). */
export function readInstallationRow<T extends object>(
  services: Services,
  org: string,
): Promise<(T & { etag: string }) | undefined> {
  return getEntity<T>(table(services), safeKey(org), "");
}

/** Raw rows matching an OData filter, for modules that keep their own fields in them. */
export function queryInstallationRows<T extends object>(
  services: Services,
  filter: string,
): AsyncIterable<T & { partitionKey: string; etag: string }> {
  return table(services).listEntities<T & { partitionKey: string }>({
    queryOptions: { filter },
  }) as AsyncIterable<T & { partitionKey: string; etag: string }>;
}

/**
 * Records a (re)connection: new tokens from a fresh grant, status active. Creates the row, or
 * merges into an existing one (keeping billing's fields and the first `installedAt`), retrying
 * lost races. Clears any refresh lease: tokens of an older grant are superseded.
 */
export async function upsertInstallation(
  services: Services,
  input: { org: string; name: string; tokens: StoredTokens },
): Promise<Installation> {
  const org = safeKey(input.org);
  const tokenSecret = await encryptTokens(services, org, input.tokens);
  return retryOnConflict(
    async () => {
      const now = services.clock.now();
      const current = await getEntity<InstallationEntity>(table(services), org, "");
      if (!current) {
        const entity = {
          partitionKey: org,
          rowKey: "",
          name: input.name,
          tokenSecret,
          tokenVersion: 1,
          status: "active",
          installedAt: now,
          updatedAt: now,
        };
        const res = await table(services).createEntity(entity);
        return toInstallation(org, { ...entity, etag: res.etag ?? "" });
      }
      const fields = {
        name: input.name,
        tokenSecret,
        tokenVersion: (current.tokenVersion ?? 0) + 1,
        status: "active",
        installedAt: current.installedAt ?? now,
        updatedAt: now,
        refreshLeaseUntil: NO_LEASE,
      };
      const etag = await mergeInstallation(services, org, current.etag, fields);
      return toInstallation(org, { ...current, ...fields, etag });
    },
    {
      exhausted: () =>
        new Error(`could not record the installation of ${org}: too much contention`),
    },
  );
}
