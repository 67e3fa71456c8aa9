/**
 * Removes rows whose time is over: ended sessions, unused OAuth states, past rate-limit windows.
 * Runs in the reconciler; bounded per run so a large backlog drains over a few runs.
 */
import { odata } from "@azure/data-tables";

import type { Services } from "./services.js";
import { statusOf } from "./errors.js";
import type { TableName } from "./storage/tables.js";

/** Tables whose rows carry an `expiresAt` after which they mean nothing. */
const EXPIRING: readonly TableName[] = ["sessions", "oauthStates", "rateLimits"];
/** Rows are kept this long past their expiry (a request racing the expiry still finds them). */
const GRACE_MS = 60 * 60_000;
const MAX_PER_TABLE = 1000;

export async function sweepExpiredRows(services: Services): Promise<Record<string, number>> {
  const cutoff = new Date(services.clock.now().getTime() - GRACE_MS);
  const deleted: Record<string, number> = {};
  for (const name of EXPIRING) {
    const table = services.tables.client(name);
    let count = 0;
    const rows = table.listEntities<{ expiresAt: Date }>({
      queryOptions: { filter: odata`expiresAt lt ${cutoff}`, select: ["PartitionKey", "RowKey"] },
    });
    for await (const row of rows) {
      if (row.partitionKey === undefined || row.rowKey === undefined) continue;
      try {
        await table.deleteEntity(row.partitionKey, row.rowKey);
      } catch (err) {
        if (statusOf(err) !== 404) throw err;
      }
      if (++count >= MAX_PER_TABLE) break;
    }
    deleted[name] = count;
  }
  return deleted;
}
