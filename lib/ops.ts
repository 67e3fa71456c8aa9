/**
 * Operator actions (the `/api/ops/...` routes). Every action is audit-logged: who, what, when.
 */
import type { InvocationContext } from "@azure/functions";

import { audit } from "./audit.js";
import { setFreeInstances } from "./billing/account.js";
import type { QueueKey } from "./bus.js";
import {
  getDeadLetter,
  listDeadLetters,
  markReplayed,
  type DeadLetterRecord,
} from "./dead-letters.js";
import { conflict, notFound, statusOf } from "./errors.js";
import { requestGatewaySync } from "./gateway/consumer.js";
import { getInstance, listAllInstances } from "./instances/store.js";
import type { Instance } from "./instances/model.js";
import type { InstanceState } from "./instances/lifecycle.js";
import { requestDeprovision, requestProvision, startReplacement } from "./provisioning/api.js";
import { startRollout, type Rollout, type RolloutRequest } from "./provisioning/rollout.js";
import { runReconciler, type ReconcilerReport } from "./reconciler/index.js";
import type { Services } from "./services.js";

export interface InstanceFilter {
  state?: InstanceState | undefined;
  org?: string | undefined;
  /** Only instances not updated for at least this many minutes. */
  staleMinutes?: number | undefined;
}

export async function findInstances(
  services: Services,
  filter: InstanceFilter,
): Promise<Instance[]> {
  const all = await listAllInstances(services, filter.state ? [filter.state] : undefined);
  const cutoff =
    filter.staleMinutes === undefined
      ? undefined
      : services.clock.now().getTime() - filter.staleMinutes * 60_000;
  return all
    .filter((i) => !filter.org || i.org === filter.org)
    .filter((i) => cutoff === undefined || i.updatedAt.getTime() <= cutoff)
    .sort((a, b) => b.updatedAt.getTime() - a.updatedAt.getTime());
}

/** Starts a fresh operation for a Failed instance: the one it failed in. */
export async function retryInstance(
  services: Services,
  actor: string,
  org: string,
  ref: string,
  ctx: InvocationContext,
): Promise<Instance> {
  const instance = await getInstance(services, org, ref);
  if (!instance) throw notFound("No such instance.");
  if (instance.state !== "Failed") {
    throw conflict(
      `Only Failed instances can be retried; this one is ${instance.state}.`,
      "not_failed",
    );
  }
  let next: Instance;
  switch (instance.operation) {
    case "deprovision":
      next = await requestDeprovision(services, { org, ref, reason: "operator_retry" }, ctx);
      break;
    case "provision":
      next = await requestProvision(
        services,
        { org, ref, userId: instance.requestedBy ?? actor },
        ctx,
      );
      break;
    case "upgrade":
    case "heal": {
      const started = await startReplacement(services, ctx, instance, {
        operation: instance.operation,
        reason: "operator_retry",
        templateSpecId: instance.templateSpecId,
      });
      if (!started) throw conflict("The instance changed meanwhile; try again.");
      next = started;
      break;
    }
  }
  await audit(services, {
    actor,
    action: "instance.retry",
    target: `${org}/${ref}`,
    details: { operation: instance.operation, operationId: next.operationId },
  });
  return next;
}

/** Deletes every Azure resource of an instance, whatever state it is in. */
export async function forceDelete(
  services: Services,
  actor: string,
  org: string,
  ref: string,
  ctx: InvocationContext,
): Promise<Instance> {
  const next = await requestDeprovision(services, { org, ref, reason: "operator" }, ctx);
  await audit(services, {
    actor,
    action: "instance.force_delete",
    target: `${org}/${ref}`,
    details: { operationId: next.operationId },
  });
  return next;
}

/**
 * Rolls Running instances to a template spec version (default: the configured one) and the
 * images pinned in this build, in batches (see ./provisioning/rollout.ts).
 */
export async function upgradeInstances(
  services: Services,
  actor: string,
  req: RolloutRequest,
): Promise<Rollout> {
  const rollout = await startRollout(services, req);
  await audit(services, {
    actor,
    action: "instances.upgrade",
    target: req.org ?? "*",
    details: {
      rolloutId: rollout.rolloutId,
      hostVersion: rollout.hostVersion,
      batch: rollout.batch,
      max: rollout.max,
    },
  });
  return rollout;
}

export async function grantFreeInstances(
  services: Services,
  actor: string,
  org: string,
  count: number,
): Promise<void> {
  try {
    await setFreeInstances(services, org, count);
  } catch (err) {
    // Merging into an org that never connected: there is no installation row to grant on.
    if (statusOf(err) === 404) throw notFound(`No organization '${org}' has connected.`);
    throw err;
  }
  await audit(services, { actor, action: "org.free_instances", target: org, details: { count } });
}

export interface ReplayResult {
  id: string;
  messageId: string;
  outcome: "replayed" | "skipped";
  detail: string;
}

async function replayOne(
  services: Services,
  record: DeadLetterRecord,
  actor: string,
  ctx: InvocationContext,
): Promise<ReplayResult> {
  const base = { id: record.id, messageId: record.messageId };
  if (record.queue === "gateway") {
    await requestGatewaySync(services, "operator replay", { delayMs: 0 });
    await markReplayed(services, record);
    return { ...base, outcome: "replayed", detail: "gateway sync requested" };
  }
  const body = record.body as { org?: unknown; ref?: unknown } | null;
  if (typeof body?.org !== "string" || typeof body.ref !== "string") {
    await markReplayed(services, record);
    return { ...base, outcome: "skipped", detail: "body is not a provisioning message" };
  }
  const instance = await getInstance(services, body.org, body.ref);
  if (instance?.state !== "Failed") {
    await markReplayed(services, record);
    return {
      ...base,
      outcome: "skipped",
      detail: instance ? `instance is ${instance.state}; nothing to replay` : "no such instance",
    };
  }
  const next = await retryInstance(services, actor, body.org, body.ref, ctx);
  await markReplayed(services, record);
  return { ...base, outcome: "replayed", detail: `new operation ${next.operationId}` };
}

/** Replays dead letters: one by id, or the oldest `max` not yet replayed. */
export async function replayDeadLetters(
  services: Services,
  actor: string,
  queue: QueueKey,
  opts: { id?: string | undefined; max: number },
  ctx: InvocationContext,
): Promise<ReplayResult[]> {
  let records: DeadLetterRecord[];
  if (opts.id) {
    const one = await getDeadLetter(services, queue, opts.id);
    if (!one) throw notFound("No such dead letter.");
    records = [one];
  } else {
    records = await listDeadLetters(services, queue, { max: opts.max });
  }
  const results: ReplayResult[] = [];
  for (const r of records) results.push(await replayOne(services, r, actor, ctx));
  await audit(services, {
    actor,
    action: "dead_letters.replay",
    target: queue,
    details: {
      count: results.length,
      replayed: results.filter((r) => r.outcome === "replayed").length,
    },
  });
  return results;
}

export async function runReconcilerNow(
  services: Services,
  actor: string,
  ctx: InvocationContext,
): Promise<ReconcilerReport> {
  const report = await runReconciler(services, ctx);
  await audit(services, {
    actor,
    action: "reconciler.run",
    target: "reconciler",
    details: { ...report },
  });
  return report;
}
