/**
 * The `alertConfigs` table (owner module): per instance (PK = org, RK = project ref) the desired
 * alerting of its Grafana host and what the host last confirmed.
 * - `settings`: the alert settings (catalog ids → enabled + parameters), stored resolved;
 * - `recipients`: user ids of verified members who get alert e-mail; absent until someone sets
 *   the list, meaning "whoever requested the instance";
 * - `desiredVersion` goes up by one with every change; `appliedVersion` / `appliedHash` are what
 *   the last successful push (or first boot) put on the host; `lastConfigError` is the last
 *   failed push's reason, cleared by the next success.
 * Every write is etag-conditional through {@link updateAlertConfig}.
 */
import { odata, type TableEntityResult } from "@azure/data-tables";

import type { AlertSettings } from "../grafana-host/alert-catalog.js";
import type { Services } from "../services.js";
import { statusOf } from "../errors.js";
import { getEntity, retryOnConflict, safeKey } from "../storage/tables.js";

export interface AlertConfig {
  org: string;
  ref: string;
  settings: AlertSettings | undefined;
  recipients: string[] | undefined;
  desiredVersion: number;
  appliedVersion: number | undefined;
  appliedHash: string | undefined;
  appliedAt: Date | undefined;
  /**
   * The instance operation (provision, heal, upgrade…) whose host the applied hash is known
   * for: a host deployed by a later operation may not have it, so it is pushed (cheaply) again.
   */
  appliedOperationId: string | undefined;
  lastConfigError: string | undefined;
  lastConfigErrorAt: Date | undefined;
  /** Failed pushes of `desiredVersion` so far (the retry budget). */
  pushFailures: number;
  updatedAt: Date;
  etag?: string | undefined;
}

interface AlertConfigEntity {
  partitionKey: string;
  rowKey: string;
  settingsJson?: string;
  recipientsJson?: string;
  desiredVersion: number;
  appliedVersion?: number;
  appliedHash?: string;
  appliedAt?: Date;
  appliedOperationId?: string;
  lastConfigError?: string;
  lastConfigErrorAt?: Date;
  pushFailures?: number;
  updatedAt: Date;
}

const table = (services: Services) => services.tables.client("alertConfigs");

function parseJson(text: string | undefined): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function fromEntity(e: TableEntityResult<AlertConfigEntity>): AlertConfig {
  const recipients = parseJson(e.recipientsJson);
  return {
    org: e.partitionKey,
    ref: e.rowKey,
    settings: parseJson(e.settingsJson) as AlertSettings | undefined,
    recipients: Array.isArray(recipients)
      ? recipients.filter((r): r is string => typeof r === "string")
      : undefined,
    desiredVersion: e.desiredVersion,
    appliedVersion: e.appliedVersion ?? undefined,
    appliedHash: e.appliedHash || undefined,
    appliedAt: e.appliedAt ?? undefined,
    appliedOperationId: e.appliedOperationId || undefined,
    lastConfigError: e.lastConfigError || undefined,
    lastConfigErrorAt: e.lastConfigErrorAt ?? undefined,
    pushFailures: e.pushFailures ?? 0,
    updatedAt: e.updatedAt,
    etag: e.etag,
  };
}

function toEntity(c: AlertConfig): AlertConfigEntity {
  const e: AlertConfigEntity = {
    partitionKey: c.org,
    rowKey: safeKey(c.ref),
    desiredVersion: c.desiredVersion,
    pushFailures: c.pushFailures,
    updatedAt: c.updatedAt,
    appliedHash: c.appliedHash ?? "",
    appliedOperationId: c.appliedOperationId ?? "",
    lastConfigError: c.lastConfigError ?? "",
  };
  if (c.settings) e.settingsJson = JSON.stringify(c.settings);
  if (c.recipients) e.recipientsJson = JSON.stringify(c.recipients);
  if (c.appliedVersion !== undefined) e.appliedVersion = c.appliedVersion;
  if (c.appliedAt) e.appliedAt = c.appliedAt;
  if (c.lastConfigErrorAt) e.lastConfigErrorAt = c.lastConfigErrorAt;
  return e;
}

export async function getAlertConfig(
  services: Services,
  org: string,
  ref: string,
): Promise<AlertConfig | undefined> {
  const e = await getEntity<AlertConfigEntity>(table(services), org, safeKey(ref));
  return e ? fromEntity(e) : undefined;
}

/** The row a never-configured instance would have. */
export function emptyAlertConfig(org: string, ref: string, now: Date): AlertConfig {
  return {
    org,
    ref,
    settings: undefined,
    recipients: undefined,
    desiredVersion: 0,
    appliedVersion: undefined,
    appliedHash: undefined,
    appliedAt: undefined,
    appliedOperationId: undefined,
    lastConfigError: undefined,
    lastConfigErrorAt: undefined,
    pushFailures: 0,
    updatedAt: now,
  };
}

/**
 * Read–decide–write of one instance's row: `decide` gets the current row (or an empty one) and
 * returns the new row, or `undefined` to leave it as it is. Lost races re-read and decide again.
 */
export async function updateAlertConfig(
  services: Services,
  org: string,
  ref: string,
  decide: (current: AlertConfig, exists: boolean) => AlertConfig | undefined,
): Promise<{ config: AlertConfig; changed: boolean }> {
  // A burst of edits of one instance races on its row: give each enough rounds.
  return retryOnConflict(
    async () => {
      const existing = await getAlertConfig(services, org, ref);
      const current = existing ?? emptyAlertConfig(org, ref, services.clock.now());
      const next = decide(structuredClone(current), existing !== undefined);
      if (!next) return { config: current, changed: false };
      next.updatedAt = services.clock.now();
      const entity = toEntity(next);
      const etag = existing
        ? (await table(services).updateEntity(entity, "Replace", { etag: existing.etag ?? "*" }))
            .etag
        : (await table(services).createEntity(entity)).etag;
      return { config: { ...next, etag }, changed: true };
    },
    { rounds: 12 },
  );
}

/** Every row (the daily recipient sweep), optionally of one org. */
export async function listAlertConfigs(services: Services, org?: string): Promise<AlertConfig[]> {
  const out: AlertConfig[] = [];
  const iter = table(services).listEntities<AlertConfigEntity>(
    org ? { queryOptions: { filter: odata`PartitionKey eq ${org}` } } : {},
  );
  for await (const e of iter) out.push(fromEntity(e));
  return out;
}

/** Removes an instance's row (after its instance is deleted for good). */
export async function deleteAlertConfig(services: Services, org: string, ref: string) {
  try {
    await table(services).deleteEntity(org, safeKey(ref));
  } catch (err) {
    if (statusOf(err) !== 404) throw err;
  }
}
