/**
 * The reconciler's sweep of Supabase keys: Supafana-named secret keys that no instance holds are
 * deleted. That is the key of a deleted instance whose revoke failed (the row still names it),
 * and keys a crashed or superseded deploy or rotation minted and never recorded. A key younger
 * than a grace period is left alone (a step may be about to record it), as is every project with
 * an operation under way. Bounded: a few projects per run, the recorded leftovers first, then a
 * window that moves on with each run so every project comes round.
 */
import type { InvocationContext } from "@azure/functions";

import { getInstance, saveInstance } from "../instances/store.js";
import type { Instance } from "../instances/model.js";
import { isSettled } from "../instances/lifecycle.js";
import { KEY_DELETE_REASONS, pruneKeys, revokeKey } from "../provisioning/instance-key.js";
import type { Services } from "../services.js";
import { isConflict } from "../storage/tables.js";
import { logEvent } from "../telemetry.js";

/** Projects whose keys are listed per run. */
export const KEY_SWEEP_PROJECTS_PER_RUN = 10;
/** Keys deleted per project and run. */
const KEY_SWEEP_DELETES_PER_PROJECT = 5;
/** An unrecorded key younger than this may belong to a step still running. */
const KEY_ORPHAN_GRACE_MS = 30 * 60_000;
const RUN_PERIOD_MS = 5 * 60_000;

const key = (i: Instance) => `${i.org}\u0000${i.ref}`;

/** Which instances this run looks at (exported for tests). */
export function keySweepCandidates(instances: Instance[], now: Date): Instance[] {
  const settled = instances
    .filter((i) => isSettled(i.state))
    .sort((a, b) => key(a).localeCompare(key(b)));
  const leftovers = settled.filter((i) => i.state === "Deleted" && (i.keyId || i.pendingKeyId));
  const rest = settled.filter((i) => !leftovers.includes(i));
  const picked = leftovers.slice(0, KEY_SWEEP_PROJECTS_PER_RUN);
  const room = Math.min(KEY_SWEEP_PROJECTS_PER_RUN - picked.length, rest.length);
  if (room > 0) {
    const start =
      (Math.floor(now.getTime() / RUN_PERIOD_MS) * KEY_SWEEP_PROJECTS_PER_RUN) % rest.length;
    for (let n = 0; n < room; n++) {
      const i = rest[(start + n) % rest.length];
      if (i) picked.push(i);
    }
  }
  return picked;
}

/** `instances`: every instance, as the reconciler listed them this run. */
export async function sweepOrphanKeys(
  services: Services,
  ctx: InvocationContext,
  now: Date,
  instances: Instance[],
): Promise<{ checked: number; deleted: number }> {
  let checked = 0;
  let deleted = 0;
  for (const candidate of keySweepCandidates(instances, now)) {
    // Read again: an operation may have started since the list.
    const i = await getInstance(services, candidate.org, candidate.ref);
    if (!i || !isSettled(i.state)) continue;
    try {
      checked += 1;
      if (i.state === "Deleted") {
        const recorded = [i.keyId, i.pendingKeyId].filter((id): id is string => !!id);
        let revoked = 0;
        for (const id of recorded) {
          if (await revokeKey(services, ctx, i, id, KEY_DELETE_REASONS.deprovisioned)) revoked += 1;
        }
        deleted += revoked;
        if (recorded.length > 0 && revoked === recorded.length) {
          await saveInstance(services, {
            ...i,
            keyId: undefined,
            keyKind: undefined,
            keyRotatedAt: undefined,
            pendingKeyId: undefined,
          }).catch((err: unknown) => {
            if (!isConflict(err)) throw err;
          });
        }
      }
      const keep = i.state === "Deleted" ? [] : [i.keyId, i.pendingKeyId];
      const n = await pruneKeys(services, ctx, i, keep, KEY_DELETE_REASONS.orphan, {
        minAgeMs: KEY_ORPHAN_GRACE_MS,
        max: KEY_SWEEP_DELETES_PER_PROJECT,
      });
      deleted += n;
      if (n > 0) {
        logEvent(ctx, "warn", "reconciler deleted orphaned Supabase keys", {
          event: "reconciler.orphan_keys",
          ref: i.ref,
          org: i.org,
          deleted: n,
        });
      }
    } catch (err) {
      // A disconnected org or a paused project: its keys are looked at again on a later run.
      logEvent(ctx, "warn", "reconciler could not check a project's Supabase keys", {
        event: "reconciler.orphan_keys",
        ref: i.ref,
        org: i.org,
        error: err instanceof Error ? err.message.slice(0, 200) : "unknown",
      });
    }
  }
  return { checked, deleted };
}
