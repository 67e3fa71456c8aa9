/**
 * Dead-lettered messages, kept for operators. The dead-letter consumers act on each message
 * (a provisioning operation turns Failed) and record it here, so an operator can list what was
 * dead-lettered and why, and replay it, long after the dead-letter queue itself was drained.
 */
import { createHash } from "node:crypto";

import type { InvocationContext } from "@azure/functions";
import { odata } from "@azure/data-tables";

import type { QueueKey } from "./bus.js";
import type { Services } from "./services.js";
import { getEntity, isConflict } from "./storage/tables.js";

export interface DeadLetterRecord {
  queue: QueueKey;
  id: string;
  messageId: string;
  sessionId?: string | undefined;
  reason?: string | undefined;
  description?: string | undefined;
  deliveryCount?: number | undefined;
  body: unknown;
  recordedAt: Date;
  replayedAt?: Date | undefined;
}

interface DeadLetterEntity {
  partitionKey: string;
  rowKey: string;
  messageId: string;
  sessionId?: string;
  reason?: string;
  description?: string;
  deliveryCount?: number;
  body: string;
  recordedAt: Date;
  replayedAt?: Date;
}

const str = (v: unknown, max = 500): string | undefined =>
  typeof v === "string" ? v.slice(0, max) : undefined;

/**
 * Why a message was dead-lettered. Service Bus keeps the reason and description as application
 * properties of the dead letter (`DeadLetterReason`, `DeadLetterErrorDescription`); the Functions
 * host passes them only inside `applicationProperties`, which `@azure/functions` camel-cases.
 */
export function deadLetterInfo(ctx: InvocationContext): {
  deadLetterReason?: string;
  deadLetterDescription?: string;
} {
  const meta = (ctx.triggerMetadata ?? {}) as Record<string, unknown>;
  const props = (meta.applicationProperties ?? {}) as Record<string, unknown>;
  const deadLetterReason = str(props.deadLetterReason, 300);
  const deadLetterDescription = str(props.deadLetterErrorDescription, 500);
  return {
    ...(deadLetterReason ? { deadLetterReason } : {}),
    ...(deadLetterDescription ? { deadLetterDescription } : {}),
  };
}

/** Records a dead-lettered message (idempotent: a redelivered dead letter is recorded once). */
export async function recordDeadLetter(
  services: Services,
  queue: QueueKey,
  body: unknown,
  ctx: InvocationContext,
): Promise<void> {
  const meta = (ctx.triggerMetadata ?? {}) as Record<string, unknown>;
  const messageId =
    (typeof meta.messageId === "number" ? String(meta.messageId) : str(meta.messageId, 200)) ??
    ctx.invocationId;
  const id = createHash("sha256").update(messageId).digest("hex").slice(0, 32);
  const entity: DeadLetterEntity = {
    partitionKey: queue,
    rowKey: id,
    messageId,
    body: JSON.stringify(body ?? null).slice(0, 30_000),
    recordedAt: services.clock.now(),
  };
  const sessionId = str(meta.sessionId, 200);
  const { deadLetterReason: reason, deadLetterDescription: description } = deadLetterInfo(ctx);
  if (sessionId) entity.sessionId = sessionId;
  if (reason) entity.reason = reason;
  if (description) entity.description = description;
  if (typeof meta.deliveryCount === "number") entity.deliveryCount = meta.deliveryCount;
  try {
    await services.tables.client("deadLetters").createEntity(entity);
  } catch (err) {
    if (!isConflict(err)) throw err;
  }
}

function fromEntity(e: DeadLetterEntity): DeadLetterRecord {
  let body: unknown;
  try {
    body = JSON.parse(e.body);
  } catch {
    body = e.body;
  }
  return {
    queue: e.partitionKey as QueueKey,
    id: e.rowKey,
    messageId: e.messageId,
    sessionId: e.sessionId,
    reason: e.reason,
    description: e.description,
    deliveryCount: e.deliveryCount,
    body,
    recordedAt: e.recordedAt,
    replayedAt: e.replayedAt,
  };
}

export async function listDeadLetters(
  services: Services,
  queue: QueueKey,
  opts: { includeReplayed?: boolean; max?: number } = {},
): Promise<DeadLetterRecord[]> {
  const out: DeadLetterRecord[] = [];
  const iter = services.tables
    .client("deadLetters")
    .listEntities<DeadLetterEntity>({ queryOptions: { filter: odata`PartitionKey eq ${queue}` } });
  for await (const e of iter) {
    if (!opts.includeReplayed && e.replayedAt) continue;
    out.push(fromEntity(e));
    if (out.length >= (opts.max ?? 100)) break;
  }
  return out.sort((a, b) => a.recordedAt.getTime() - b.recordedAt.getTime());
}

export async function getDeadLetter(
  services: Services,
  queue: QueueKey,
  id: string,
): Promise<DeadLetterRecord | undefined> {
  const e = await getEntity<DeadLetterEntity>(services.tables.client("deadLetters"), queue, id);
  return e ? fromEntity(e) : undefined;
}

export async function markReplayed(services: Services, record: DeadLetterRecord): Promise<void> {
  await services.tables
    .client("deadLetters")
    .updateEntity(
      { partitionKey: record.queue, rowKey: record.id, replayedAt: services.clock.now() },
      "Merge",
    );
}
