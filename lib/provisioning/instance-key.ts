/**
 * The Supabase secret key each Grafana host scrapes the project's metrics with.
 *
 * A host gets its own `secret` key, named for the operation that minted it
 * (`supafana_grafana_<8 hex of the operation id>`), so that deleting the instance, rotating, or
 * the user in the Supabase dashboard can revoke exactly what the VM holds. The key's value only
 * ever travels inside the `@secure()` cloud-init parameter or a run command; the table keeps its
 * id. When the grant cannot mint keys (no `secrets:write`: 403) or the project has no new-style
 * keys, the project's shared service-role key is used as before and the instance says `legacy`.
 *
 * Minting is idempotent by name: a redelivered step lists the project's keys and reuses the one
 * this operation already made (the row's `keyId` first); keys of the name that lost a race are
 * pruned once the deployment exists (see `pruneInstanceKeys`), and the reconciler removes what a
 * crash left elsewhere (see `sweepOrphanKeys`).
 */
import type { InvocationContext } from "@azure/functions";

import type { Instance, KeyKind } from "../instances/model.js";
import type { Services } from "../services.js";
import { supabaseFor, type ProjectApiKey } from "../supabase/client.js";
import { logEvent } from "../telemetry.js";

/** Every key this app mints starts with this (and only those are ever deleted by it). */
export const KEY_NAME_PREFIX = "supafana_grafana_";

/** Deletion reasons, as Supabase records them. */
export const KEY_DELETE_REASONS = {
  deprovisioned: "supafana_instance_deleted",
  rotated: "rotating_key",
  orphan: "supafana_orphaned_key",
  superseded: "supafana_superseded_key",
  rotationFailed: "supafana_rotation_failed",
} as const;

/** `supafana_grafana_<first 8 letters or digits of the id>`: `^[a-z_][a-z0-9_]+$`, 4–64 long. */
export function keyNameFor(id: string): string {
  const tail = id
    .toLowerCase()
    .replace(/[^a-z0-9]/g, "")
    .slice(0, 8);
  if (tail.length < 8) throw new Error("a key name needs an id with at least 8 letters or digits");
  return `${KEY_NAME_PREFIX}${tail}`;
}

export const isSupafanaKey = (k: Pick<ProjectApiKey, "name">) => k.name.startsWith(KEY_NAME_PREFIX);

export function keyDescription(projectName: string): string {
  return `Supafana Grafana for ${projectName} — deleting it stops the dashboard`;
}

export interface InstanceKey {
  kind: KeyKind;
  /** The key value: for the host only, never stored or logged. */
  value: string;
  /** Set for a dedicated key. */
  id?: string;
}

const hasNewKeys = (keys: ProjectApiKey[]) =>
  keys.some((k) => k.type === "publishable" || (k.type === "secret" && !isSupafanaKey(k)));

/**
 * The key for the host of `i`'s operation named `name`: the one already minted under that name
 * (preferring `preferId`), else a new one; the legacy service-role key when none can be minted.
 */
export async function mintOrReuseKey(
  services: Services,
  i: Pick<Instance, "org" | "ref" | "projectName">,
  name: string,
  preferId?: string,
): Promise<InstanceKey> {
  const client = supabaseFor(services, i.org);
  const keys = await client.listApiKeys(i.ref, { reveal: true });
  const legacy = async (): Promise<InstanceKey> => ({
    kind: "legacy",
    value: await client.getServiceKey(i.ref),
  });
  const mine = keys
    .filter((k) => k.name === name && k.type === "secret" && k.id && k.apiKey)
    .sort((a, b) =>
      a.id === preferId ? -1 : b.id === preferId ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0,
    );
  const found = mine[0];
  if (found?.apiKey) return { kind: "dedicated", id: found.id, value: found.apiKey };
  if (!hasNewKeys(keys)) return legacy();
  const created = await client.createSecretKey(i.ref, name, keyDescription(i.projectName ?? i.ref));
  if (created.kind !== "created") return legacy();
  return { kind: "dedicated", id: created.id, value: created.apiKey };
}

/** Deletes a key; true when it is gone (deleted now or before). Failures are logged, not thrown. */
export async function revokeKey(
  services: Services,
  ctx: InvocationContext,
  i: Pick<Instance, "org" | "ref">,
  id: string,
  reason: string,
): Promise<boolean> {
  try {
    const outcome = await supabaseFor(services, i.org).deleteApiKey(i.ref, id, reason);
    if (outcome === "forbidden") {
      logEvent(ctx, "warn", "not allowed to delete the instance's Supabase key", {
        event: "supabase.key_delete_forbidden",
        ref: i.ref,
        org: i.org,
        keyId: id,
      });
      return false;
    }
    logEvent(ctx, "info", "deleted a Supabase secret key", {
      event: "supabase.key_deleted",
      ref: i.ref,
      org: i.org,
      keyId: id,
      reason,
      outcome,
    });
    return true;
  } catch (err) {
    logEvent(ctx, "warn", "could not delete a Supabase secret key", {
      event: "supabase.key_delete_failed",
      ref: i.ref,
      org: i.org,
      keyId: id,
      error: err instanceof Error ? err.message.slice(0, 200) : "unknown",
    });
    return false;
  }
}

/**
 * Deletes the Supafana keys of `i`'s project other than `keep` (and, with `minAgeMs`, only those
 * older than that: a key minted a moment ago may belong to a step still running). Returns how
 * many were deleted.
 */
export async function pruneKeys(
  services: Services,
  ctx: InvocationContext,
  i: Pick<Instance, "org" | "ref">,
  keep: ReadonlyArray<string | undefined>,
  reason: string,
  opts: { minAgeMs?: number; max?: number } = {},
): Promise<number> {
  const keys = await supabaseFor(services, i.org).listApiKeys(i.ref, { reveal: false });
  const now = services.clock.now().getTime();
  const stale = keys.filter(
    (k) =>
      isSupafanaKey(k) &&
      k.id &&
      !keep.includes(k.id) &&
      (opts.minAgeMs === undefined ||
        (k.insertedAt !== undefined && now - k.insertedAt.getTime() >= opts.minAgeMs)),
  );
  let deleted = 0;
  for (const k of stale.slice(0, opts.max ?? stale.length)) {
    if (await revokeKey(services, ctx, i, k.id, reason)) deleted += 1;
  }
  return deleted;
}
