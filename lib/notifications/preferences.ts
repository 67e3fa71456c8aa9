/**
 * The `memberPreferences` table (owner module): one row per member who has verified themselves
 * (PK = org, RK = Supabase user id), with when they were first seen verified and their choice for
 * each transactional e-mail. A member without a row has never verified (and cannot receive alert
 * e-mail); a missing choice means "yes". What `ALWAYS_SENT` names is not a preference.
 */
import { odata } from "@azure/data-tables";

import type { Services } from "../services.js";
import { getEntity, isConflict, retryOnConflict, safeKey } from "../storage/tables.js";

export const PREFERENCE_KEYS = [
  "instanceReady",
  "trialEnding",
  "paymentFailed",
  "instanceDeleted",
] as const;
export type PreferenceKey = (typeof PREFERENCE_KEYS)[number];
export type Preferences = Record<PreferenceKey, boolean>;
/**
 * E-mails no preference can turn off: the code a member proves who they are with, and the notice
 * that replacing a Grafana host failed (the instance is down until someone acts).
 */
export const ALWAYS_SENT = ["verificationCode", "instanceFailed"] as const;

interface MemberEntity {
  partitionKey: string;
  rowKey: string;
  verifiedAt: Date;
  instanceReady?: boolean;
  trialEnding?: boolean;
  paymentFailed?: boolean;
  instanceDeleted?: boolean;
}

const table = (services: Services) => services.tables.client("memberPreferences");

const toPreferences = (e: Partial<MemberEntity> | undefined): Preferences =>
  Object.fromEntries(PREFERENCE_KEYS.map((k) => [k, e?.[k] !== false])) as Preferences;

/** Records that a member has verified themselves (idempotent; keeps their preferences). */
export async function recordVerifiedMember(
  services: Services,
  org: string,
  userId: string,
): Promise<void> {
  const rk = safeKey(userId);
  if (await getEntity<MemberEntity>(table(services), org, rk)) return;
  try {
    await table(services).createEntity<MemberEntity>({
      partitionKey: org,
      rowKey: rk,
      verifiedAt: services.clock.now(),
    });
  } catch (err) {
    if (!isConflict(err)) throw err; // created meanwhile
  }
}

/** User ids of the org's members who have verified themselves. */
export async function listVerifiedMembers(services: Services, org: string): Promise<Set<string>> {
  const out = new Set<string>();
  const iter = table(services).listEntities<MemberEntity>({
    queryOptions: { filter: odata`PartitionKey eq ${org}`, select: ["RowKey"] },
  });
  for await (const e of iter) out.add(e.rowKey);
  return out;
}

export async function getPreferences(
  services: Services,
  org: string,
  userId: string,
): Promise<Preferences> {
  return toPreferences(await getEntity<MemberEntity>(table(services), org, safeKey(userId)));
}

/** Applies a partial change to a verified member's preferences; returns them all. */
export async function updatePreferences(
  services: Services,
  org: string,
  userId: string,
  patch: Partial<Preferences>,
): Promise<Preferences> {
  const rk = safeKey(userId);
  return retryOnConflict(async () => {
    const row = await getEntity<MemberEntity>(table(services), org, rk);
    const next: MemberEntity = {
      partitionKey: org,
      rowKey: rk,
      verifiedAt: row?.verifiedAt ?? services.clock.now(),
      ...toPreferences(row),
    };
    for (const k of PREFERENCE_KEYS) {
      const v = patch[k];
      if (v !== undefined) next[k] = v;
    }
    if (row) await table(services).updateEntity(next, "Replace", { etag: row.etag });
    else await table(services).createEntity(next);
    return toPreferences(next);
  });
}
