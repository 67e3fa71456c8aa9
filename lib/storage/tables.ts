/**
 * Azure Table storage: the app's whole state. One client per table, created once per process.
 * Locally the connection string points at Azurite; in Azure the function identity reaches the
 * table endpoint with RBAC (no shared keys).
 */
import { TableClient, TableServiceClient, odata, type TableEntityResult } from "@azure/data-tables";
import type { TokenCredential } from "@azure/core-auth";

import { AppError, statusOf } from "../errors.js";
import { hasControlCharacters } from "../http.js";

export const TABLE_NAMES = [
  "installations",
  "sessions",
  "oauthStates",
  "verifications",
  "instances",
  "projectRefs",
  "stripeEvents",
  "gateway",
  "audit",
  "rateLimits",
  "deadLetters",
  "rollouts",
  "alertConfigs",
  "memberPreferences",
] as const;
export type TableName = (typeof TABLE_NAMES)[number];

export interface Tables {
  client(name: TableName): TableClient;
  /** Creates every table that does not exist yet (idempotent). */
  ensure(): Promise<void>;
  /** A cheap round trip to the table endpoint (health check). */
  ping(): Promise<void>;
}

export interface TablesOptions {
  connectionString?: string | undefined;
  serviceUri?: string | undefined;
  credential?: () => Promise<TokenCredential>;
  /** Prefix for table names (isolates test runs). Letters and digits only. */
  prefix?: string;
}

export function createTables(opts: TablesOptions): Tables {
  const prefix = opts.prefix ?? "";
  if (!/^[A-Za-z0-9]*$/.test(prefix)) throw new Error("table prefix must be alphanumeric");
  const clients = new Map<TableName, TableClient>();
  let service: TableServiceClient | undefined;
  // Resolved on the first request, so clients can be built synchronously.
  const resolveCredential = opts.credential;
  const credential: TokenCredential | undefined = resolveCredential
    ? { getToken: async (scopes, options) => (await resolveCredential()).getToken(scopes, options) }
    : undefined;
  const insecure = (s: string) => /UseDevelopmentStorage=true|http:\/\//i.test(s);

  function build(name: TableName): TableClient {
    const tableName = `${prefix}${name}`;
    if (opts.connectionString) {
      return TableClient.fromConnectionString(opts.connectionString, tableName, {
        allowInsecureConnection: insecure(opts.connectionString),
      });
    }
    if (!opts.serviceUri || !credential) throw new Error("table storage is not configured");
    return new TableClient(opts.serviceUri, tableName, credential);
  }
  function svc(): TableServiceClient {
    if (service) return service;
    if (opts.connectionString) {
      service = TableServiceClient.fromConnectionString(opts.connectionString, {
        allowInsecureConnection: insecure(opts.connectionString),
      });
    } else {
      if (!opts.serviceUri || !credential) throw new Error("table storage is not configured");
      service = new TableServiceClient(opts.serviceUri, credential);
    }
    return service;
  }

  return {
    client(name) {
      let c = clients.get(name);
      if (!c) {
        c = build(name);
        clients.set(name, c);
      }
      return c;
    },
    async ensure() {
      await Promise.all(
        TABLE_NAMES.map(async (name) => {
          try {
            await this.client(name).createTable();
          } catch (err) {
            if (statusOf(err) !== 409) throw err;
          }
        }),
      );
    },
    async ping() {
      const pages = svc().listTables().byPage({ maxPageSize: 1 });
      await pages.next();
    },
  };
}

/** Reads one entity, or `undefined` when it does not exist. */
export async function getEntity<T extends object>(
  table: TableClient,
  partitionKey: string,
  rowKey: string,
): Promise<TableEntityResult<T> | undefined> {
  try {
    return await table.getEntity<T>(partitionKey, rowKey);
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw err;
  }
}

/**
 * True when an etag-conditional write lost a race (412) or a create found the row (409). An
 * `AppError` is the app's own answer (a 409 `conflict` to a client), never a lost race.
 */
export const isConflict = (err: unknown): boolean => {
  if (err instanceof AppError) return false;
  const s = statusOf(err);
  return s === 412 || s === 409;
};

/** Table keys may not contain / \ # ? or control characters. */
export function safeKey(value: string): string {
  if (
    hasControlCharacters(value) ||
    /[/\\#?]/.test(value) ||
    value.length === 0 ||
    value.length > 512
  ) {
    throw new Error("value cannot be used as a table key");
  }
  return value;
}

/**
 * The one read–decide–write loop of etag-conditional tables: runs `attempt` again while it loses
 * a race (`isConflict`), at most `rounds` times, then throws `exhausted()` (a 503 by default)
 * or, when that is not an error, returns it. `attempt` must re-read what it decides on: each round
 * starts from the current row; it throws `lostRace()` when what it read was gone meanwhile.
 * `pause` runs between rounds (a jittered wait spreads a burst on one hot row).
 */
export async function retryOnConflict<T>(
  attempt: (round: number) => Promise<T>,
  opts: { rounds?: number; exhausted?: () => Error | T; pause?: () => Promise<unknown> } = {},
): Promise<T> {
  const rounds = opts.rounds ?? 5;
  for (let round = 0; round < rounds; round++) {
    try {
      return await attempt(round);
    } catch (err) {
      if (!isConflict(err)) throw err;
    }
    if (opts.pause && round + 1 < rounds) await opts.pause();
  }
  const last = (opts.exhausted ?? rowKeptChanging)();
  if (last instanceof Error) throw last;
  return last;
}

/** What an `attempt` of `retryOnConflict` throws to read again (a row vanished between reads). */
export const lostRace = (): Error =>
  Object.assign(new Error("the row changed while it was being read"), { statusCode: 412 });

const rowKeptChanging = () =>
  new AppError(503, "unavailable", "The record kept changing while it was being saved; try again.");

/**
 * Deletes rows whose `expiresAt` is before `cutoff`, at most `max` (a large backlog drains over
 * a few runs). Returns how many were deleted.
 */
export async function deleteExpiredRows(
  table: TableClient,
  cutoff: Date,
  max: number,
): Promise<number> {
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
    if (++count >= max) break;
  }
  return count;
}
