/**
 * Audit log of operator actions: who did what, to what, when. One row per action in the `audit`
 * table, partitioned by day and ordered newest first within a day.
 */
import { randomBytes } from "node:crypto";

import { odata } from "@azure/data-tables";

import type { Services } from "./services.js";

export interface AuditEntry {
  at: Date;
  actor: string;
  action: string;
  target: string;
  details?: Record<string, unknown>;
}

const day = (d: Date) => d.toISOString().slice(0, 10);
/** Inverted milliseconds, so a day's rows list newest first. */
const invertedTime = (d: Date) => String(9_999_999_999_999 - d.getTime()).padStart(13, "0");

export async function audit(services: Services, entry: Omit<AuditEntry, "at">): Promise<void> {
  const at = services.clock.now();
  await services.tables.client("audit").createEntity({
    partitionKey: day(at),
    rowKey: `${invertedTime(at)}-${randomBytes(4).toString("hex")}`,
    at,
    actor: entry.actor,
    action: entry.action,
    target: entry.target,
    details: JSON.stringify(entry.details ?? {}),
  });
}

export async function listAudit(
  services: Services,
  onDay: Date,
  limit = 200,
): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  const iter = services.tables
    .client("audit")
    .listEntities<{ at: Date; actor: string; action: string; target: string; details: string }>({
      queryOptions: { filter: odata`PartitionKey eq ${day(onDay)}` },
    });
  for await (const e of iter) {
    out.push({
      at: e.at,
      actor: e.actor,
      action: e.action,
      target: e.target,
      details: JSON.parse(e.details) as Record<string, unknown>,
    });
    if (out.length >= limit) break;
  }
  return out;
}
