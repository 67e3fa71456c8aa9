import { randomUUID } from "node:crypto";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { getEntity } from "../../lib/storage/tables.js";
import { purgeExpiredRows } from "../../lib/expired-rows.js";
import type { Platform } from "../../local/platform.js";
import { startTestPlatform } from "../helpers/platform.js";

describe("purging expired rows", () => {
  let platform: Platform;
  beforeAll(async () => {
    platform = await startTestPlatform();
  });
  afterAll(async () => {
    await platform.close();
  });

  it("when sessions, OAuth states and rate-limit windows are long past, then they are deleted and live ones stay", async () => {
    const now = Date.now();
    const long = new Date(now - 3 * 3600_000);
    const later = new Date(now + 3600_000);
    const rows = {
      sessions: [randomUUID(), randomUUID()],
      oauthStates: [randomUUID(), randomUUID()],
      rateLimits: [randomUUID(), randomUUID()],
    } as const;
    for (const [table, [expired, live]] of Object.entries(rows) as Array<
      [keyof typeof rows, readonly [string, string]]
    >) {
      const client = platform.services.tables.client(table);
      await client.createEntity({ partitionKey: expired, rowKey: "", expiresAt: long });
      await client.createEntity({ partitionKey: live, rowKey: "", expiresAt: later });
    }
    const deleted = await purgeExpiredRows(platform.services);
    for (const [table, [expired, live]] of Object.entries(rows) as Array<
      [keyof typeof rows, readonly [string, string]]
    >) {
      const client = platform.services.tables.client(table);
      expect(await getEntity(client, expired, ""), `${table} expired`).toBeUndefined();
      expect(await getEntity(client, live, ""), `${table} live`).toBeDefined();
      expect(deleted[table]).toBeGreaterThanOrEqual(1);
    }
  });
});
