/**
 * Rotation of an instance's dedicated Supabase key without a gap in the metrics:
 * mint a new key -> record it as pending (etag-conditional) -> push it to the host by run command
 * (the script swaps Prometheus' password file, reloads, and waits for an `up == 1` scrape) ->
 * record it as the key -> delete the old key. A failed check on the host keeps the old key (the
 * script restores it) and deletes the new one; an unknown outcome (the run command did not
 * answer) keeps both, and the next rotation pushes the same pending key again.
 */
import { randomUUID } from "node:crypto";

import type { InvocationContext } from "@azure/functions";

import { runGrafanaHostScript } from "../azure/arm.js";
import { AppError, conflict, notFound } from "../errors.js";
import { getInstance, saveInstance } from "../instances/store.js";
import type { Instance } from "../instances/model.js";
import type { Services } from "../services.js";
import { isConflict } from "../storage/tables.js";
import { supabaseFor } from "../supabase/client.js";
import { logEvent } from "../telemetry.js";
import { KEY_DELETE_REASONS, keyNameFor, mintOrReuseKey, revokeKey } from "./instance-key.js";

/** The host waits up to 150 s for a scrape; with Azure's overhead this stays under the 230 s an HTTP request may take. */
export const KEY_PUSH_TIMEOUT_MS = 200_000;
const MAX_ROUNDS = 4;

export type KeyRotationTrigger = "requested" | "scheduled";

/** Whether `i`'s key is due for rotation under the `KEY_ROTATION_DAYS` policy. */
export function keyRotationDue(i: Instance, now: Date, days: number): boolean {
  if (i.state !== "Running" || i.keyKind !== "dedicated" || !i.keyId) return false;
  const last = i.keyRotatedAt ?? i.readyAt ?? i.createdAt;
  return now.getTime() - last.getTime() >= days * 86_400_000;
}

async function save(services: Services, i: Instance, patch: Partial<Instance>): Promise<Instance> {
  return saveInstance(services, { ...i, ...patch, updatedAt: services.clock.now() });
}

/** Rotates the key of a Running instance; returns the row afterwards. */
export async function rotateInstanceKey(
  services: Services,
  ctx: InvocationContext,
  org: string,
  ref: string,
  trigger: KeyRotationTrigger,
): Promise<Instance> {
  let i = await getInstance(services, org, ref);
  if (!i) throw notFound("This project has no Grafana instance.");
  if (i.state !== "Running") {
    throw conflict("The key can be rotated once the instance is running.", "instance_not_running");
  }
  const oldId = i.keyKind === "dedicated" ? i.keyId : undefined;

  // The key to push: a pending one from a rotation whose outcome is unknown, else a new one.
  let next: { id: string; value: string } | undefined;
  if (i.pendingKeyId) {
    const keys = await supabaseFor(services, org).listApiKeys(ref, { reveal: true });
    const pending = keys.find((k) => k.id === i?.pendingKeyId && k.apiKey);
    if (pending?.apiKey) next = { id: pending.id, value: pending.apiKey };
  }
  let minted = false;
  if (!next) {
    const key = await mintOrReuseKey(services, i, keyNameFor(randomUUID()));
    if (key.kind !== "dedicated" || !key.id) {
      throw conflict(
        "Supabase does not let Supafana create API keys for this project (the connection lacks the secrets:write permission, or the project has no secret keys yet); it keeps using the project's service_role key.",
        "key_rotation_unavailable",
      );
    }
    next = { id: key.id, value: key.value };
    minted = true;
  }

  try {
    i = await save(services, i, { pendingKeyId: next.id });
  } catch (err) {
    if (!isConflict(err)) throw err;
    if (minted) await revokeKey(services, ctx, i, next.id, KEY_DELETE_REASONS.superseded);
    throw conflict("The instance changed meanwhile; try again.");
  }

  const { keyRotationOutcome, renderKeyRotationScript } =
    await import("../grafana-host/key-rotation.js");
  let output: string;
  try {
    output = (
      await runGrafanaHostScript(services, ref, renderKeyRotationScript(ref, next.value), {
        timeoutMs: KEY_PUSH_TIMEOUT_MS,
      })
    ).message;
  } catch (err) {
    logEvent(ctx, "warn", "key rotation: the host did not answer", {
      event: "supabase.key_rotation",
      ref,
      org,
      trigger,
      outcome: "unknown",
      error: err instanceof Error ? err.message.slice(0, 200) : "unknown",
    });
    throw new AppError(
      502,
      "upstream_error",
      "The Grafana host did not confirm the new key; the previous key stays valid. Try again in a few minutes.",
    );
  }

  const outcome = keyRotationOutcome(output);
  if (!outcome.ok) {
    await revokeKey(services, ctx, i, next.id, KEY_DELETE_REASONS.rotationFailed);
    await settle(services, i, { pendingKeyId: undefined }, next.id);
    logEvent(ctx, "warn", "key rotation failed on the host; the previous key is kept", {
      event: "supabase.key_rotation",
      ref,
      org,
      trigger,
      outcome: "failed",
      error: outcome.message,
    });
    throw new AppError(
      502,
      "key_rotation_failed",
      `The Grafana host could not scrape Supabase with the new key (${outcome.message}); the previous key is still in use.`,
    );
  }

  const done = await settle(
    services,
    i,
    {
      keyId: next.id,
      keyKind: "dedicated",
      keyRotatedAt: services.clock.now(),
      pendingKeyId: undefined,
    },
    next.id,
  );
  if (oldId && oldId !== next.id)
    await revokeKey(services, ctx, done, oldId, KEY_DELETE_REASONS.rotated);
  logEvent(ctx, "info", "rotated the instance's Supabase key", {
    event: "supabase.key_rotation",
    ref,
    org,
    trigger,
    outcome: "rotated",
    keyId: next.id,
  });
  return done;
}

/** Applies `patch` while the row still has `pendingId` pending (re-reading on a lost race). */
async function settle(
  services: Services,
  i: Instance,
  patch: Partial<Instance>,
  pendingId: string,
): Promise<Instance> {
  let current: Instance | undefined = i;
  for (let round = 0; round < MAX_ROUNDS && current; round++) {
    if (current.pendingKeyId !== pendingId) return current;
    try {
      return await save(services, current, patch);
    } catch (err) {
      if (!isConflict(err)) throw err;
      current = await getInstance(services, i.org, i.ref);
    }
  }
  throw conflict("The instance kept changing; try again.");
}
