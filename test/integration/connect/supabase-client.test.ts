import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import { SESSION_COOKIE } from "../../../lib/auth/session.js";
import {
  encryptTokens,
  getInstallation,
  mergeInstallation,
  readInstallationTokens,
} from "../../../lib/installations.js";
import { createServices } from "../../../lib/services.js";
import { supabaseFor } from "../../../lib/supabase/client.js";
import { requestTokens } from "../../../lib/supabase/token-endpoint.js";
import { TestClient } from "../../helpers/client.js";
import {
  addOrg,
  connect,
  connectDefinitions,
  type ConnectPlatform,
  errorOf,
  startConnectPlatform,
} from "./fixture.js";

let t: ConnectPlatform;

beforeAll(async () => {
  t = await startConnectPlatform();
});
afterAll(async () => {
  await t.platform.close();
});
afterEach(() => {
  t.clock.reset();
});

/** A connected org and a signed-in client, with nothing cached yet. */
async function connected(opts: Parameters<typeof addOrg>[1] = {}) {
  const org = addOrg(t.supabase, opts);
  const client = t.client();
  const res = await connect(client, t.supabase, org.slug);
  expect(res.status).toBe(302);
  expect(client.cookies.has(SESSION_COOKIE)).toBe(true);
  return { org, client };
}

const stats = () => t.supabase.stats();

describe("token refresh", () => {
  it("when the stored token is about to expire, then it is refreshed first and the new refresh token is stored", async () => {
    const { org, client } = await connected();
    const before = await readInstallationTokens(t.services, org.slug);
    const refreshes = stats().refreshes;
    t.clock.advance(3600_000); // past the token's expires_in
    const res = await client.get("/api/projects");
    expect(res.status).toBe(200);
    expect(stats().refreshes - refreshes).toBe(1);
    const after = await readInstallationTokens(t.services, org.slug);
    expect(after?.installation.tokenVersion).toBe((before?.installation.tokenVersion ?? 0) + 1);
    expect(after?.tokens?.refreshToken).not.toBe(before?.tokens?.refreshToken);
    expect(after?.tokens?.accessToken).not.toBe(before?.tokens?.accessToken);
    expect(after?.leaseUntil).toBeUndefined();
  });

  it("when Supabase refuses the access token once, then it refreshes and retries, twice in a row", async () => {
    const { org, client } = await connected();
    const refreshes = stats().refreshes;
    t.supabase.expireAccessTokens();
    expect((await client.get("/api/projects")).status).toBe(200);
    t.supabase.expireAccessTokens();
    expect((await client.get("/api/org/members")).status).toBe(200);
    expect(stats().refreshes - refreshes).toBe(2);
    // Rotation worked both times: the stored refresh token is the latest one.
    expect((await getInstallation(t.services, org.slug))?.tokenVersion).toBe(3);
  });

  it("when two requests meet an expired token at once, then exactly one refresh happens", async () => {
    const { client } = await connected();
    const refreshes = stats().refreshes;
    t.supabase.expireAccessTokens();
    const [a, b] = await Promise.all([client.get("/api/projects"), client.get("/api/org/members")]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(stats().refreshes - refreshes).toBe(1);
  });

  it("when two instances meet an expired token at once, then exactly one refresh happens across them", async () => {
    const { org, client } = await connected();
    const other = createServices(t.services.config, { tablePrefix: t.tablePrefix, clock: t.clock });
    try {
      const otherClient = new TestClient(connectDefinitions, other);
      for (const [k, v] of client.cookies) otherClient.cookies.set(k, v);
      const refreshes = stats().refreshes;
      t.supabase.expireAccessTokens();
      const results = await Promise.all([
        client.get("/api/projects"),
        otherClient.get("/api/projects"),
        client.get("/api/org/members"),
        otherClient.get("/api/org/members"),
      ]);
      expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200]);
      expect(stats().refreshes - refreshes).toBe(1);
      expect((await getInstallation(t.services, org.slug))?.status).toBe("active");
    } finally {
      await other.close();
    }
  });

  it("when another instance holds the refresh lease, then this one waits for its tokens instead of refreshing", async () => {
    const { org, client } = await connected();
    const refreshesBefore = stats().refreshes;
    const row = await readInstallationTokens(t.services, org.slug);
    if (!row?.tokens) throw new Error("no tokens");
    // Another instance took the lease and is refreshing.
    await mergeInstallation(t.services, org.slug, row.installation.etag, {
      refreshLeaseUntil: new Date(t.clock.now().getTime() + 15_000),
    });
    t.supabase.expireAccessTokens();
    // The same session on services whose installation-row reads are counted.
    let reads = 0;
    const tables = t.services.tables;
    const watched = {
      ...t.services,
      tables: {
        ...tables,
        client: (name: Parameters<typeof tables.client>[0]) => {
          const real = tables.client(name);
          if (name !== "installations") return real;
          return new Proxy(real, {
            get: (target, prop, receiver) => {
              const value: unknown = Reflect.get(target, prop, receiver);
              if (typeof value !== "function") return value;
              const fn = (value as (...a: unknown[]) => unknown).bind(target);
              if (prop !== "getEntity") return fn;
              return (...args: unknown[]) => {
                reads++;
                return fn(...args);
              };
            },
          });
        },
      },
    };
    const waiting = new TestClient(connectDefinitions, watched);
    for (const [name, value] of client.cookies) waiting.cookies.set(name, value);
    const calls = stats().managementCalls;
    const pending = waiting.get("/api/projects");
    await expect.poll(() => stats().managementCalls, { timeout: 25_000 }).toBeGreaterThan(calls);
    // This instance met the 401, found the lease and reads the row again while it waits.
    const readsAt401 = reads;
    await expect.poll(() => reads, { timeout: 25_000 }).toBeGreaterThanOrEqual(readsAt401 + 2);
    expect(stats().refreshes).toBe(refreshesBefore);

    // The other instance finishes: new tokens, new version, lease released.
    const fresh = await requestTokens(t.services, {
      grant_type: "refresh_token",
      refresh_token: row.tokens.refreshToken,
    });
    const current = await readInstallationTokens(t.services, org.slug);
    await mergeInstallation(t.services, org.slug, current!.installation.etag, {
      tokenSecret: await encryptTokens(t.services, org.slug, fresh),
      tokenVersion: row.installation.tokenVersion + 1,
      refreshLeaseUntil: new Date(0),
    });
    const res = await pending;
    expect(res.status).toBe(200);
    expect(stats().refreshes - refreshesBefore).toBe(1);
    expect((await getInstallation(t.services, org.slug))?.status).toBe("active");
  });

  it("when billing merges into the row while a refresh runs, then both writes survive", async () => {
    const { org, client } = await connected();
    t.supabase.expireAccessTokens();
    const [res] = await Promise.all([
      client.get("/api/projects"),
      t.services.tables
        .client("installations")
        .updateEntity(
          { partitionKey: org.slug, rowKey: "", subscriptionStatus: "active" },
          "Merge",
        ),
    ]);
    expect(res.status).toBe(200);
    const row = await readInstallationTokens(t.services, org.slug);
    expect(row?.installation.subscriptionStatus).toBe("active");
    expect(row?.installation.tokenVersion).toBe(2);
    // The stored refresh token is the live one: one more refresh works.
    t.supabase.expireAccessTokens();
    expect((await client.get("/api/org/members")).status).toBe(200);
  });
});

describe("revoked grant", () => {
  it("when the org revoked the app, then the installation is marked revoked and the user must reconnect", async () => {
    const { org, client } = await connected();
    t.supabase.revokeGrant(org.slug);
    const res = await client.get("/api/projects");
    expect(res.status).toBe(401);
    expect(errorOf(res).code).toBe("installation_revoked");
    expect((await getInstallation(t.services, org.slug))?.status).toBe("revoked");

    // Nothing more is asked of Supabase for a revoked installation.
    const calls = stats().managementCalls;
    const tokenRequests = stats().tokenRequests;
    const again = await client.get("/api/org/members");
    expect(again.status).toBe(401);
    expect(errorOf(again).code).toBe("installation_revoked");
    expect(stats().managementCalls).toBe(calls);
    expect(stats().tokenRequests).toBe(tokenRequests);

    // Reconnecting makes it active again.
    const fresh = t.client();
    await connect(fresh, t.supabase, org.slug);
    expect((await getInstallation(t.services, org.slug))?.status).toBe("active");
    expect((await fresh.get("/api/projects")).status).toBe(200);
  });
});

describe("rate limits and failures", () => {
  it("when Supabase answers 429 with a short reset, then it waits and succeeds", async () => {
    const { client } = await connected();
    const calls = stats().managementCalls;
    t.supabase.injectFault({ status: 429, count: 1, resetSeconds: 1 });
    const started = Date.now();
    const res = await client.get("/api/projects");
    expect(res.status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(stats().managementCalls - calls).toBe(2);
  });

  it("when the reset is too long to wait, then it answers 503 with Retry-After and stops calling until then", async () => {
    const { client } = await connected();
    t.supabase.injectFault({ status: 429, count: 1, resetSeconds: 30 });
    const res = await client.get("/api/projects");
    expect(res.status).toBe(503);
    expect(errorOf(res).code).toBe("upstream_rate_limited");
    expect(Number(res.headers.get("retry-after"))).toBe(30);
    const calls = stats().managementCalls;
    const again = await client.get("/api/org/members");
    expect(again.status).toBe(503);
    expect(stats().managementCalls).toBe(calls);
  });

  it("when an org keeps getting 429s, then its waits stop at its budget and other orgs are unaffected", async () => {
    const { org } = await connected();
    const { client: otherClient } = await connected();
    const sb = supabaseFor(t.services, org.slug);
    t.supabase.injectFault({ status: 429, count: 8, resetSeconds: 0 });
    const calls = stats().managementCalls;
    // 4 attempts (3 waits), then 2 more waits use up the budget of 5, then no wait at all.
    await expect(sb.listMembers()).rejects.toMatchObject({
      status: 503,
      code: "upstream_rate_limited",
    });
    await expect(sb.listProjects()).rejects.toMatchObject({
      status: 503,
      code: "upstream_rate_limited",
    });
    await expect(sb.getOrganization()).rejects.toMatchObject({
      status: 503,
      code: "upstream_rate_limited",
    });
    expect(stats().managementCalls - calls).toBe(8);
    expect((await otherClient.get("/api/org/members")).status).toBe(200);
  });

  it("when Supabase fails with 500, then it answers 502 upstream_error without details", async () => {
    const { client } = await connected();
    t.supabase.injectFault({ status: 500, count: 1 });
    const res = await client.get("/api/projects");
    expect(res.status).toBe(502);
    expect(errorOf(res).code).toBe("upstream_error");
    expect(res.text).not.toMatch(/stack|at .*\.ts/);
  });
});

describe("supabaseFor", () => {
  it("when asked for a service key, then it is the revealed secret key with the service_role template", async () => {
    const { org } = await connected();
    const p = org.projects[0]!;
    p.serviceKey = "sb_secret_abcdefghijklmnopqrstuv_12345678";
    expect(await supabaseFor(t.services, org.slug).getServiceKey(p.ref)).toBe(p.serviceKey);
  });

  it("when a paused project's keys are asked for, then it is a 409 project_unavailable", async () => {
    const { org } = await connected();
    const paused = org.projects.find((p) => p.status === "INACTIVE")!;
    await expect(supabaseFor(t.services, org.slug).getServiceKey(paused.ref)).rejects.toMatchObject(
      {
        status: 409,
        code: "project_unavailable",
      },
    );
  });

  it("when a project belongs to another org, then it is not found and does not belong", async () => {
    const { org } = await connected();
    const { org: other } = await connected();
    const sb = supabaseFor(t.services, org.slug);
    const foreign = other.projects[0]!.ref;
    expect(await sb.getProject(foreign)).toBeUndefined();
    expect(await sb.projectBelongsToOrg(foreign)).toBe(false);
    expect(await sb.projectBelongsToOrg(org.projects[0]!.ref)).toBe(true);
    expect(await sb.projectBelongsToOrg("not-a-ref")).toBe(false);
    await expect(sb.getServiceKey(foreign)).rejects.toMatchObject({ status: 404 });
  });

  it("when the org, members and projects are read repeatedly, then each costs one call until the cache lapses", async () => {
    const { org } = await connected();
    const sb = supabaseFor(t.services, org.slug);
    const calls = stats().managementCalls;
    for (let i = 0; i < 5; i++) {
      await Promise.all([sb.getOrganization(), sb.listMembers(), sb.listProjects()]);
    }
    expect(stats().managementCalls - calls).toBe(3);
    expect(await sb.getOrganization()).toEqual({ slug: org.slug, name: org.name });
    t.clock.advance(31_000);
    await sb.listProjects();
    expect(stats().managementCalls - calls).toBe(4);
  });

  it("when an org has more than 100 projects, then every page is read", async () => {
    const { org } = await connected({ projects: 130 });
    const list = await supabaseFor(t.services, org.slug).listProjects();
    expect(list).toHaveLength(130);
    expect(new Set(list.map((p) => p.ref)).size).toBe(130);
  });
});
