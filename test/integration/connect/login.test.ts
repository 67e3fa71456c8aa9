import { HttpRequest, InvocationContext } from "@azure/functions";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import { OAUTH_COOKIE } from "../../../lib/auth/oauth.js";
import { SESSION_COOKIE } from "../../../lib/auth/session.js";
import { getInstallation, readInstallationTokens } from "../../../lib/installations.js";
import {
  addOrg,
  connect,
  connectDefinitions,
  type ConnectPlatform,
  countRows,
  errorOf,
  pathOf,
  projectsOf,
  rawTables,
  startConnectPlatform,
  startLogin,
} from "./fixture.js";

let t: ConnectPlatform;
let base: string;

beforeAll(async () => {
  t = await startConnectPlatform();
  base = t.services.config.PUBLIC_BASE_URL;
});
afterAll(async () => {
  await t.platform.close();
});
afterEach(() => {
  t.clock.reset();
});

describe("GET /api/auth/login", () => {
  it("when called, then it redirects to Supabase's authorize endpoint with state, PKCE S256 and our callback", async () => {
    const client = t.client();
    const { res, authorize, state } = await startLogin(client, "/dashboard");
    expect(`${authorize.origin}${authorize.pathname}`).toBe(
      `${t.services.config.SUPABASE_API_URL}/v1/oauth/authorize`,
    );
    const q = authorize.searchParams;
    expect(q.get("client_id")).toBe(t.services.config.SUPABASE_CLIENT_ID);
    expect(q.get("redirect_uri")).toBe(`${base}/api/auth/callback`);
    expect(q.get("response_type")).toBe("code");
    expect(q.get("code_challenge_method")).toBe("S256");
    expect(q.get("code_challenge")).toMatch(/^[\w-]{43}$/);
    expect(state.length).toBeGreaterThanOrEqual(43);
    expect(res.setCookies.some((c) => c.startsWith(`${OAUTH_COOKIE}=`))).toBe(true);
  });

  it.each([
    "https://evil.example/",
    "//evil.example",
    "/\\evil.example",
    "javascript:alert(1)",
    "/..//evil.example",
  ])(
    "when returnTo is %j, then it redirects to the SPA's error and stores nothing",
    async (returnTo) => {
      const before = await countRows(t.services, "oauthStates");
      const res = await t.client().get(`/api/auth/login?returnTo=${encodeURIComponent(returnTo)}`);
      expect(res.status).toBe(302);
      expect(res.headers.get("location")).toBe(`${base}/?connectError=invalid_return_to`);
      expect(res.setCookies).toEqual([]);
      expect(await countRows(t.services, "oauthStates")).toBe(before);
    },
  );
});

describe("GET /api/auth/callback", () => {
  it("when consent is given, then the installation is recorded, a session starts and the browser goes to returnTo", async () => {
    const org = addOrg(t.supabase, { name: "Acme Inc" });
    const client = t.client();
    const res = await connect(client, t.supabase, org.slug, "/dashboard?tab=projects");
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe(`${new URL(base).origin}/dashboard?tab=projects`);
    expect(client.cookies.has(SESSION_COOKIE)).toBe(true);
    expect(client.cookies.has(OAUTH_COOKIE)).toBe(false);

    const installation = await getInstallation(t.services, org.slug);
    expect(installation).toMatchObject({
      org: org.slug,
      name: "Acme Inc",
      status: "active",
      tokenVersion: 1,
    });

    const me = await client.get("/api/me");
    expect(me.status).toBe(200);
    expect(me.body).toEqual({ org: { slug: org.slug, name: "Acme Inc" }, user: null });

    const projects = await client.get("/api/projects");
    expect(projects.status).toBe(200);
    expect(
      projectsOf(projects)
        .map((p) => p.ref)
        .sort(),
    ).toEqual(org.projects.map((p) => p.ref).sort());
  });

  it("when the session cookie is set, then it is HttpOnly, Secure and SameSite=Lax", async () => {
    const org = addOrg(t.supabase);
    const client = t.client();
    const { authorize } = await startLogin(client);
    const callback = new URL(t.supabase.authorize(authorize.searchParams, org.slug));
    const def = connectDefinitions.find((d) => d.name === "authCallback");
    if (def?.kind !== "http") throw new Error("no callback definition");
    const req = new HttpRequest({
      method: "GET",
      url: callback.toString(),
      headers: { cookie: [...client.cookies].map(([k, v]) => `${k}=${v}`).join("; ") },
    });
    const init = await def.handler(
      req,
      new InvocationContext({ functionName: "authCallback" }),
      t.services,
    );
    const session = init.cookies?.find((c) => c.name === SESSION_COOKIE);
    expect(session).toMatchObject({ httpOnly: true, secure: true, sameSite: "Lax", path: "/" });
    expect(session?.value).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
  });

  it("when the state is unknown, then it redirects with invalid_state and stores nothing", async () => {
    const org = addOrg(t.supabase);
    const client = t.client();
    const { authorize } = await startLogin(client);
    const params = new URLSearchParams(authorize.searchParams);
    params.set("state", "forged-state-value-forged-state-value-forged");
    const res = await client.get(pathOf(t.supabase.authorize(params, org.slug)));
    expect(res.headers.get("location")).toBe(`${base}/?connectError=invalid_state`);
    expect(client.cookies.has(SESSION_COOKIE)).toBe(false);
    expect(await getInstallation(t.services, org.slug)).toBeUndefined();
  });

  it("when the callback arrives in another browser than the one that started, then it is refused", async () => {
    const org = addOrg(t.supabase);
    const attacker = t.client();
    const { authorize } = await startLogin(attacker);
    const callback = t.supabase.authorize(authorize.searchParams, org.slug);
    const victim = t.client();
    const res = await victim.get(pathOf(callback));
    expect(res.headers.get("location")).toBe(`${base}/?connectError=invalid_state`);
    expect(victim.cookies.has(SESSION_COOKIE)).toBe(false);
    expect(await getInstallation(t.services, org.slug)).toBeUndefined();
  });

  it("when a state is replayed, then the replay is refused and only one code exchange happened", async () => {
    const org = addOrg(t.supabase);
    const client = t.client();
    const { authorize } = await startLogin(client);
    const binding = client.cookies.get(OAUTH_COOKIE) ?? "";
    const callback = pathOf(t.supabase.authorize(authorize.searchParams, org.slug));
    const tokensBefore = t.supabase.stats().tokenRequests;

    const first = await client.get(callback);
    expect(first.headers.get("location")).toBe(`${new URL(base).origin}/dashboard`);
    client.cookies.set(OAUTH_COOKIE, binding); // even with the binding cookie kept
    const replay = await client.get(callback);
    expect(replay.headers.get("location")).toBe(`${base}/?connectError=invalid_state`);
    expect(t.supabase.stats().tokenRequests - tokensBefore).toBe(1);
  });

  it("when two callbacks with the same state race, then exactly one wins", async () => {
    const org = addOrg(t.supabase);
    const client = t.client();
    const { authorize } = await startLogin(client);
    const callback = pathOf(t.supabase.authorize(authorize.searchParams, org.slug));
    const tokensBefore = t.supabase.stats().tokenRequests;
    const results = await Promise.all([
      client.get(callback),
      client.get(callback),
      client.get(callback),
    ]);
    const locations = results.map((r) => r.headers.get("location"));
    expect(locations.filter((l) => l === `${new URL(base).origin}/dashboard`)).toHaveLength(1);
    expect(locations.filter((l) => l === `${base}/?connectError=invalid_state`)).toHaveLength(2);
    expect(t.supabase.stats().tokenRequests - tokensBefore).toBe(1);
  });

  it("when the state is older than 10 minutes, then it redirects with state_expired and stores nothing", async () => {
    const org = addOrg(t.supabase);
    const client = t.client();
    const { authorize } = await startLogin(client);
    t.clock.advance(10 * 60_000 + 1000);
    const res = await client.get(pathOf(t.supabase.authorize(authorize.searchParams, org.slug)));
    expect(res.headers.get("location")).toBe(`${base}/?connectError=state_expired`);
    expect(client.cookies.has(SESSION_COOKIE)).toBe(false);
    expect(await getInstallation(t.services, org.slug)).toBeUndefined();
  });

  it("when the code was issued for another PKCE challenge, then the exchange fails and nothing is stored", async () => {
    const org = addOrg(t.supabase);
    const client = t.client();
    const first = await startLogin(client);
    const second = await startLogin(client); // this browser's current state
    // A code obtained with the first login's challenge, delivered with the second's state.
    const params = new URLSearchParams(first.authorize.searchParams);
    params.set("state", second.state);
    const res = await client.get(pathOf(t.supabase.authorize(params, org.slug)));
    expect(res.headers.get("location")).toBe(`${base}/?connectError=exchange_failed`);
    expect(client.cookies.has(SESSION_COOKIE)).toBe(false);
    expect(await getInstallation(t.services, org.slug)).toBeUndefined();
  });

  it("when the user denies consent, then it redirects with access_denied and stores nothing", async () => {
    const org = addOrg(t.supabase);
    const client = t.client();
    const { state } = await startLogin(client);
    const sessionsBefore = await countRows(t.services, "sessions");
    const res = await client.get(
      `/api/auth/callback?error=access_denied&error_description=The+user+denied+the+request&state=${state}`,
    );
    expect(res.headers.get("location")).toBe(`${base}/?connectError=access_denied`);
    expect(client.cookies.has(SESSION_COOKIE)).toBe(false);
    expect(await countRows(t.services, "sessions")).toBe(sessionsBefore);
    expect(await getInstallation(t.services, org.slug)).toBeUndefined();
  });

  it("when Supabase's token endpoint fails, then it redirects with upstream_error and stores nothing", async () => {
    const org = addOrg(t.supabase);
    const client = t.client();
    const { authorize } = await startLogin(client);
    const callback = pathOf(t.supabase.authorize(authorize.searchParams, org.slug));
    t.supabase.injectFault({ status: 500, pathPrefix: "/v1/oauth/token" });
    const res = await client.get(callback);
    expect(res.headers.get("location")).toBe(`${base}/?connectError=upstream_error`);
    expect(await getInstallation(t.services, org.slug)).toBeUndefined();
  });

  it("when an org reconnects, then the row keeps billing's fields and its first installedAt", async () => {
    const org = addOrg(t.supabase);
    await connect(t.client(), t.supabase, org.slug);
    const first = await getInstallation(t.services, org.slug);
    await t.services.tables
      .client("installations")
      .updateEntity(
        { partitionKey: org.slug, rowKey: "", stripeCustomerId: "cus_123", freeInstances: 2 },
        "Merge",
      );
    await connect(t.client(), t.supabase, org.slug);
    const second = await getInstallation(t.services, org.slug);
    expect(second).toMatchObject({
      status: "active",
      tokenVersion: 2,
      stripeCustomerId: "cus_123",
      freeInstances: 2,
    });
    expect(second?.installedAt?.getTime()).toBe(first?.installedAt?.getTime());
  });
});

describe("POST /api/auth/logout", () => {
  it("when signed in, then the session row is deleted and the cookie cleared", async () => {
    const org = addOrg(t.supabase);
    const client = t.client();
    await connect(client, t.supabase, org.slug);
    const cookie = client.cookies.get(SESSION_COOKIE) ?? "";
    const res = await client.post("/api/auth/logout");
    expect(res.status).toBe(204);
    expect(client.cookies.has(SESSION_COOKIE)).toBe(false);
    // The old cookie no longer opens anything: the server-side row is gone.
    const stale = await client.get("/api/me", {
      headers: { cookie: `${SESSION_COOKIE}=${cookie}` },
    });
    expect(stale.status).toBe(401);
  });

  it("when the Origin is foreign or missing, then it is refused and the session stays", async () => {
    const org = addOrg(t.supabase);
    const client = t.client();
    await connect(client, t.supabase, org.slug);
    const foreign = await client.post("/api/auth/logout", {
      headers: { origin: "https://evil.example" },
    });
    expect(foreign.status).toBe(403);
    expect(errorOf(foreign).code).toBe("csrf_origin_mismatch");
    const none = await client.post("/api/auth/logout", { noOrigin: true });
    expect(none.status).toBe(403);
    expect((await client.get("/api/me")).status).toBe(200);
  });
});

describe("sessions", () => {
  const DAY = 24 * 3600_000;

  it("when a session is idle for more than 7 days, then it has ended", async () => {
    const org = addOrg(t.supabase);
    const client = t.client();
    await connect(client, t.supabase, org.slug);
    t.clock.advance(6 * DAY);
    expect((await client.get("/api/me")).status).toBe(200);
    t.clock.advance(7 * DAY + 60_000);
    expect((await client.get("/api/me")).status).toBe(401);
  });

  it("when a session is used regularly, then it slides but ends at the 30-day cap", async () => {
    const org = addOrg(t.supabase);
    const client = t.client();
    await connect(client, t.supabase, org.slug);
    for (let day = 6; day <= 24; day += 6) {
      t.clock.advance(6 * DAY);
      expect((await client.get("/api/me")).status).toBe(200);
    }
    t.clock.advance(6 * DAY + 60_000); // day 30 and a minute
    expect((await client.get("/api/me")).status).toBe(401);
  });
});

describe("tables at rest", () => {
  it("when read raw, then no token, authorization code, state or client secret is in clear", async () => {
    const org = addOrg(t.supabase);
    const client = t.client();
    const { authorize, state } = await startLogin(client);
    const callback = new URL(t.supabase.authorize(authorize.searchParams, org.slug));
    const code = callback.searchParams.get("code") ?? "";
    await client.get(pathOf(callback.toString()));
    // Leave a pending state in the table too.
    const pending = await startLogin(t.client());

    const row = await readInstallationTokens(t.services, org.slug);
    const tokens = row?.tokens;
    expect(tokens?.accessToken).toBeTruthy();
    const raw = await rawTables(t.services, ["installations", "sessions", "oauthStates"]);
    for (const secret of [
      tokens?.accessToken ?? "",
      tokens?.refreshToken ?? "",
      code,
      state,
      pending.state,
      t.services.config.SUPABASE_CLIENT_SECRET,
    ]) {
      expect(secret.length).toBeGreaterThan(8);
      expect(raw).not.toContain(secret);
    }
  });
});
