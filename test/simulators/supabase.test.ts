import { createHash, randomBytes } from "node:crypto";

import { SupabaseManagementAPI, SupabaseManagementAPIError } from "supabase-management-js";
import { afterEach, describe, expect, it } from "vitest";

import {
  makeDemoOrg,
  startSupabaseSimulator,
  type SimOrg,
  type SupabaseSimOptions,
  type SupabaseSimulator,
} from "../../local/simulators/supabase.js";

const CLIENT_ID = "5b4f3c1e-0000-4000-8000-00000000abcd";
const CLIENT_SECRET = "sim-test-client-secret";
const REDIRECT = "http://localhost:7071/api/auth/callback";

interface Tokens {
  access_token: string;
  refresh_token: string;
  expires_in: number;
  token_type: string;
}

let sim: SupabaseSimulator | undefined;
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

/** A clock tests can move. */
function manualClock(start = Date.UTC(2026, 0, 1)) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

async function start(extra: Partial<SupabaseSimOptions> = {}): Promise<SupabaseSimulator> {
  sim = await startSupabaseSimulator({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    orgs: [makeDemoOrg()],
    autoApprove: true,
    ...extra,
  });
  return sim;
}

function pkce() {
  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  return { verifier, challenge };
}

function authorizeParams(challenge: string, extra: Record<string, string> = {}) {
  return new URLSearchParams({
    client_id: CLIENT_ID,
    redirect_uri: REDIRECT,
    response_type: "code",
    state: "st-123",
    code_challenge: challenge,
    code_challenge_method: "S256",
    ...extra,
  });
}

const basic = (id = CLIENT_ID, secret = CLIENT_SECRET) =>
  `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`;

/** The token request the project makes with plain fetch. */
function tokenRequest(s: SupabaseSimulator, form: Record<string, string>, authorization = basic()) {
  return fetch(`${s.url}/v1/oauth/token`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      accept: "application/json",
      authorization,
    },
    body: new URLSearchParams(form),
  });
}

/** Browser leg: follow authorize without following the redirect; returns the callback URL. */
async function authorizeViaHttp(s: SupabaseSimulator, params: URLSearchParams): Promise<URL> {
  const res = await fetch(`${s.url}/v1/oauth/authorize?${params.toString()}`, {
    redirect: "manual",
  });
  expect(res.status).toBe(302);
  return new URL(res.headers.get("location") ?? "");
}

async function login(s: SupabaseSimulator, orgSlug?: string): Promise<Tokens> {
  const { verifier, challenge } = pkce();
  const extra: Record<string, string> = orgSlug ? { organization_slug: orgSlug } : {};
  const callback = await authorizeViaHttp(s, authorizeParams(challenge, extra));
  const res = await tokenRequest(s, {
    grant_type: "authorization_code",
    code: callback.searchParams.get("code") ?? "",
    redirect_uri: REDIRECT,
    code_verifier: verifier,
  });
  expect(res.status).toBe(201);
  return (await res.json()) as Tokens;
}

function api(s: SupabaseSimulator, accessToken: string) {
  return new SupabaseManagementAPI({ accessToken, baseUrl: s.url });
}

async function apiError(p: Promise<unknown>): Promise<SupabaseManagementAPIError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof SupabaseManagementAPIError) return err;
    throw err;
  }
  throw new Error("expected a SupabaseManagementAPIError");
}

function otherOrg(): SimOrg {
  return {
    slug: "other-org",
    name: "Other Org",
    members: [{ user_id: "u-1", user_name: "eve", role_name: "Owner", mfa_enabled: false }],
    projects: [
      { ref: "otherorgprojectrefzz", name: "Other", region: "us-east-1", status: "ACTIVE_HEALTHY" },
    ],
  };
}

describe("demo org", () => {
  it("when makeDemoOrg is called, then it has 4-5 projects with valid refs and 3 members, one without email", () => {
    const org = makeDemoOrg();
    expect(org.slug).toBe("demo-org");
    expect(org.projects.length).toBeGreaterThanOrEqual(4);
    expect(org.projects.length).toBeLessThanOrEqual(5);
    for (const p of org.projects) expect(p.ref).toMatch(/^[a-z]{20}$/);
    expect(new Set(org.projects.map((p) => p.ref)).size).toBe(org.projects.length);
    expect(org.members).toHaveLength(3);
    expect(org.members.filter((m) => m.email === undefined)).toHaveLength(1);
    // Each call gives a fresh copy that tests may mutate.
    org.projects.pop();
    expect(makeDemoOrg().projects).toHaveLength(org.projects.length + 1);
  });

  it("when an org with an invalid ref is added, then the simulator refuses it", async () => {
    const s = await start();
    const bad = otherOrg();
    bad.projects[0]!.ref = "NotARef";
    expect(() => {
      s.addOrg(bad);
    }).toThrow(/invalid project ref/);
  });
});

describe("OAuth authorize", () => {
  it("when autoApprove is on, then authorize redirects at once with a code and the state", async () => {
    const s = await start();
    const callback = await authorizeViaHttp(s, authorizeParams(pkce().challenge));
    expect(`${callback.origin}${callback.pathname}`).toBe(REDIRECT);
    expect(callback.searchParams.get("code")).toMatch(/\S{20,}/);
    expect(callback.searchParams.get("state")).toBe("st-123");
  });

  it("when the client_id is unknown, then authorize answers 400 and does not redirect", async () => {
    const s = await start();
    const params = authorizeParams(pkce().challenge, { client_id: "not-our-client" });
    const res = await fetch(`${s.url}/v1/oauth/authorize?${params.toString()}`, {
      redirect: "manual",
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ message: "Invalid client_id" });
    expect(() => s.authorize(params)).toThrow("Invalid client_id");
  });

  it("when response_type or the challenge method is wrong, then authorize redirects with an error and the state", async () => {
    const s = await start();
    const wrongType = await authorizeViaHttp(
      s,
      authorizeParams(pkce().challenge, { response_type: "token" }),
    );
    expect(wrongType.searchParams.get("error")).toBe("unsupported_response_type");
    expect(wrongType.searchParams.get("state")).toBe("st-123");
    expect(wrongType.searchParams.has("code")).toBe(false);

    const wrongMethod = await authorizeViaHttp(
      s,
      authorizeParams(pkce().challenge, { code_challenge_method: "md5" }),
    );
    expect(wrongMethod.searchParams.get("error")).toBe("invalid_request");
  });

  it("when PKCE is missing, then authorize refuses it by default", async () => {
    const s = await start();
    const params = authorizeParams("x");
    params.delete("code_challenge");
    params.delete("code_challenge_method");
    const callback = await authorizeViaHttp(s, params);
    expect(callback.searchParams.get("error")).toBe("invalid_request");
    expect(callback.searchParams.get("error_description")).toMatch(/code_challenge/);
  });

  it("when autoApprove is off, then a consent page is served whose Approve link redirects with a code", async () => {
    const s = await start({ autoApprove: false });
    const params = authorizeParams(pkce().challenge);
    const page = await fetch(`${s.url}/v1/oauth/authorize?${params.toString()}`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/text\/html/);
    const html = await page.text();
    const approve = /id="approve-demo-org" href="([^"]+)"/.exec(html)?.[1]?.replace(/&amp;/g, "&");
    expect(approve).toBeDefined();
    const res = await fetch(`${s.url}${approve!}`, { redirect: "manual" });
    expect(res.status).toBe(302);
    const callback = new URL(res.headers.get("location") ?? "");
    expect(callback.searchParams.get("code")).toBeTruthy();
    expect(callback.searchParams.get("state")).toBe("st-123");
    // The consent request is single use.
    expect((await fetch(`${s.url}${approve!}`, { redirect: "manual" })).status).toBe(400);
  });

  it("when the user clicks Deny, then the redirect carries error=access_denied and the state", async () => {
    const s = await start({ autoApprove: false });
    const html = await (
      await fetch(`${s.url}/v1/oauth/authorize?${authorizeParams(pkce().challenge).toString()}`)
    ).text();
    const deny = /id="deny" href="([^"]+)"/.exec(html)?.[1]?.replace(/&amp;/g, "&");
    const res = await fetch(`${s.url}${deny!}`, { redirect: "manual" });
    const callback = new URL(res.headers.get("location") ?? "");
    expect(callback.searchParams.get("error")).toBe("access_denied");
    expect(callback.searchParams.get("state")).toBe("st-123");
    expect(callback.searchParams.has("code")).toBe(false);
  });

  it("when organization_slug is given, then the grant is for that org", async () => {
    const s = await start();
    s.addOrg(otherOrg());
    const tokens = await login(s, "other-org");
    const { data } = await api(s, tokens.access_token).listAllOrganizations();
    expect(data).toEqual([{ id: "other-org", slug: "other-org", name: "Other Org" }]);
  });
});

describe("OAuth token", () => {
  it("when a code is exchanged with Basic auth and the right verifier, then 201 returns a Bearer token pair", async () => {
    const s = await start({ accessTokenTtlSeconds: 900 });
    const tokens = await login(s);
    expect(tokens).toEqual({
      access_token: expect.any(String) as string,
      refresh_token: expect.any(String) as string,
      expires_in: 900,
      token_type: "Bearer",
    });
    expect(Object.keys(tokens).sort()).toEqual([
      "access_token",
      "expires_in",
      "refresh_token",
      "token_type",
    ]);
    expect(s.stats().tokenRequests).toBe(1);
  });

  it("when the SDK's exchangeOauthToken sends client credentials in the body, then the exchange succeeds", async () => {
    const s = await start();
    const { verifier, challenge } = pkce();
    const code = new URL(s.authorize(authorizeParams(challenge))).searchParams.get("code")!;
    const result = await new SupabaseManagementAPI({
      accessToken: "",
      baseUrl: s.url,
    }).exchangeOauthToken({
      grant_type: "authorization_code",
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      code,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
    });
    expect(result.status).toBe(201);
    expect(result.data.token_type).toBe("Bearer");
  });

  it("when the verifier does not match the challenge, then the exchange fails with 400 {message}", async () => {
    const s = await start();
    const code = new URL(s.authorize(authorizeParams(pkce().challenge))).searchParams.get("code")!;
    const res = await tokenRequest(s, {
      grant_type: "authorization_code",
      code,
      redirect_uri: REDIRECT,
      code_verifier: pkce().verifier,
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ message: "Invalid code_verifier" });
  });

  it("when the redirect_uri differs from the authorize request, then the exchange fails with 400", async () => {
    const s = await start();
    const { verifier, challenge } = pkce();
    const code = new URL(s.authorize(authorizeParams(challenge))).searchParams.get("code")!;
    const res = await tokenRequest(s, {
      grant_type: "authorization_code",
      code,
      redirect_uri: `${REDIRECT}/other`,
      code_verifier: verifier,
    });
    expect(res.status).toBe(400);
  });

  it("when a code is used twice, then the second exchange fails and the first grant is revoked", async () => {
    const s = await start();
    const { verifier, challenge } = pkce();
    const code = new URL(s.authorize(authorizeParams(challenge))).searchParams.get("code")!;
    const form = {
      grant_type: "authorization_code",
      code,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
    };
    const first = await tokenRequest(s, form);
    expect(first.status).toBe(201);
    const { access_token } = (await first.json()) as Tokens;
    const second = await tokenRequest(s, form);
    expect(second.status).toBe(400);
    const err = await apiError(api(s, access_token).listAllOrganizations());
    expect(err.status).toBe(401);
  });

  it("when a code is older than 5 minutes, then the exchange fails with 400", async () => {
    const clock = manualClock();
    const s = await start({ now: clock.now });
    const { verifier, challenge } = pkce();
    const code = new URL(s.authorize(authorizeParams(challenge))).searchParams.get("code")!;
    clock.advance(5 * 60 * 1000 + 1);
    const res = await tokenRequest(s, {
      grant_type: "authorization_code",
      code,
      redirect_uri: REDIRECT,
      code_verifier: verifier,
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toMatch(/expired/);
  });

  it("when the client secret is wrong, then the token endpoint answers 401", async () => {
    const s = await start();
    const res = await tokenRequest(
      s,
      { grant_type: "refresh_token", refresh_token: "x" },
      basic(CLIENT_ID, "nope"),
    );
    expect(res.status).toBe(401);
    expect(await res.json()).toHaveProperty("message");
  });

  it("when the body is JSON instead of a form, then the token endpoint answers 400", async () => {
    const s = await start();
    const res = await fetch(`${s.url}/v1/oauth/token`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: basic() },
      body: JSON.stringify({ grant_type: "refresh_token", refresh_token: "x" }),
    });
    expect(res.status).toBe(400);
  });

  it("when a refresh token is used, then a new pair is returned and the old refresh token is refused", async () => {
    const s = await start();
    const first = await login(s);
    const refreshed = await tokenRequest(s, {
      grant_type: "refresh_token",
      refresh_token: first.refresh_token,
    });
    expect(refreshed.status).toBe(201);
    const second = (await refreshed.json()) as Tokens;
    expect(second.refresh_token).not.toBe(first.refresh_token);
    expect(second.access_token).not.toBe(first.access_token);

    const reuse = await tokenRequest(s, {
      grant_type: "refresh_token",
      refresh_token: first.refresh_token,
    });
    expect(reuse.status).toBe(400);

    const again = await tokenRequest(s, {
      grant_type: "refresh_token",
      refresh_token: second.refresh_token,
    });
    expect(again.status).toBe(201);
    expect(s.stats().refreshes).toBe(2);
  });

  it("when access tokens are expired, then the API answers 401 Unauthorized until the client refreshes", async () => {
    const s = await start();
    const tokens = await login(s);
    s.expireAccessTokens();
    const err = await apiError(api(s, tokens.access_token).listAllProjects());
    expect(err.status).toBe(401);
    expect(err.data).toEqual({ message: "Unauthorized" });

    const res = await tokenRequest(s, {
      grant_type: "refresh_token",
      refresh_token: tokens.refresh_token,
    });
    const fresh = (await res.json()) as Tokens;
    const { data } = await api(s, fresh.access_token).listAllProjects();
    expect(data).toHaveLength(5);
  });

  it("when the access token's lifetime passes, then it stops working", async () => {
    const clock = manualClock();
    const s = await start({ now: clock.now, accessTokenTtlSeconds: 60 });
    const tokens = await login(s);
    await api(s, tokens.access_token).listAllOrganizations();
    clock.advance(61_000);
    expect((await apiError(api(s, tokens.access_token).listAllOrganizations())).status).toBe(401);
  });

  it("when the org's grant is revoked, then access tokens get 401 and refresh gets 401", async () => {
    const s = await start();
    const tokens = await login(s);
    s.revokeGrant("demo-org");
    expect((await apiError(api(s, tokens.access_token).listAllOrganizations())).status).toBe(401);
    const res = await tokenRequest(s, {
      grant_type: "refresh_token",
      refresh_token: tokens.refresh_token,
    });
    expect(res.status).toBe(401);
    // Re-authorizing creates a new, working grant.
    const again = await login(s);
    expect((await api(s, again.access_token).listAllOrganizations()).data).toHaveLength(1);
  });

  it("when the SDK revokes a refresh token, then 204 is returned and the grant stops working", async () => {
    const s = await start();
    const tokens = await login(s);
    const result = await api(s, tokens.access_token).revokeToken({
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      refresh_token: tokens.refresh_token,
    });
    expect(result.status).toBe(204);
    expect((await apiError(api(s, tokens.access_token).listAllProjects())).status).toBe(401);
  });
});

describe("Management API", () => {
  it("when the token's org is listed, then only the granted org is returned", async () => {
    const s = await start();
    s.addOrg(otherOrg());
    const tokens = await login(s, "demo-org");
    const { data, status } = await api(s, tokens.access_token).listAllOrganizations();
    expect(status).toBe(200);
    expect(data).toEqual([{ id: "demo-org", slug: "demo-org", name: "Demo Org" }]);
  });

  it("when an organization is read, then it has the real shape, and other orgs are 403/404", async () => {
    const s = await start();
    s.addOrg(otherOrg());
    const client = api(s, (await login(s)).access_token);
    const { data } = await client.getAnOrganization("demo-org");
    expect(data).toEqual({
      id: "demo-org",
      name: "Demo Org",
      plan: "pro",
      opt_in_tags: [],
      allowed_release_channels: expect.any(Array) as unknown[],
    });
    expect((await apiError(client.getAnOrganization("other-org"))).status).toBe(403);
    expect((await apiError(client.getAnOrganization("no-such-org"))).status).toBe(404);
    expect((await apiError(client.listOrganizationMembers("other-org"))).status).toBe(403);
  });

  it("when members are listed, then email is present only where known", async () => {
    const s = await start();
    const { data } = await api(s, (await login(s)).access_token).listOrganizationMembers(
      "demo-org",
    );
    expect(data).toHaveLength(3);
    const noEmail = data.filter((m) => !("email" in m));
    expect(noEmail).toHaveLength(1);
    expect(noEmail[0]).toEqual({
      user_id: expect.any(String) as string,
      user_name: "linus",
      role_name: "Read-only",
      mfa_enabled: false,
    });
  });

  it("when projects are listed, then each has the V1ProjectWithDatabaseResponse shape", async () => {
    const s = await start();
    const { data } = await api(s, (await login(s)).access_token).listAllProjects();
    expect(data).toHaveLength(5);
    const prod = data.find((p) => p.ref === "qzdemoprodapiabcdefg");
    expect(prod).toEqual({
      id: "qzdemoprodapiabcdefg",
      ref: "qzdemoprodapiabcdefg",
      organization_id: "demo-org",
      organization_slug: "demo-org",
      name: "Production API",
      region: "us-east-1",
      status: "ACTIVE_HEALTHY",
      created_at: "2024-03-04T09:15:00.000Z",
      database: {
        host: "db.qzdemoprodapiabcdefg.supabase.co",
        version: expect.any(String) as string,
        postgres_engine: expect.any(String) as string,
        release_channel: "ga",
      },
    });
  });

  it("when a test adds a project at runtime, then the API returns it", async () => {
    const s = await start();
    const client = api(s, (await login(s)).access_token);
    s.orgs[0]!.projects.push({
      ref: "brandnewprojectrefab",
      name: "New",
      region: "us-east-1",
      status: "COMING_UP",
    });
    const { data } = await client.getProject("brandnewprojectrefab");
    expect(data.status).toBe("COMING_UP");
  });

  it("when org projects are paged, then offset/limit/sort/statuses/search apply and count is the total", async () => {
    const s = await start();
    const client = api(s, (await login(s)).access_token);
    const page1 = await client.getAllProjectsForOrganization("demo-org", {
      limit: 2,
      offset: 0,
      sort: "name_asc",
    });
    expect(page1.data.pagination).toEqual({ count: 5, limit: 2, offset: 0 });
    expect(page1.data.projects.map((p) => p.name)).toEqual(["Analytics", "Edge Worker"]);
    const page3 = await client.getAllProjectsForOrganization("demo-org", {
      limit: 2,
      offset: 4,
      sort: "name_asc",
    });
    expect(page3.data.projects.map((p) => p.name)).toEqual(["Staging Web"]);

    const item = page1.data.projects[0]!;
    expect(item).toMatchObject({
      ref: "qzdemoanalyticslmnop",
      cloud_provider: "AWS",
      is_branch: false,
    });
    expect(item.databases[0]).toMatchObject({ identifier: item.ref, type: "PRIMARY" });

    const paused = await client.getAllProjectsForOrganization("demo-org", { statuses: "INACTIVE" });
    expect(paused.data.projects.map((p) => p.ref)).toEqual(["qzdemopausedlegacyuv"]);
    const search = await client.getAllProjectsForOrganization("demo-org", { search: "STAGING" });
    expect(search.data.pagination.count).toBe(1);
    expect(
      (await apiError(client.getAllProjectsForOrganization("demo-org", { limit: 101 }))).status,
    ).toBe(400);
  });

  it("when a project outside the grant is read, then 404 {message} is returned", async () => {
    const s = await start();
    s.addOrg(otherOrg());
    const client = api(s, (await login(s, "demo-org")).access_token);
    const err = await apiError(client.getProject("otherorgprojectrefzz"));
    expect(err.status).toBe(404);
    expect(err.data).toEqual({ message: expect.any(String) as string });
    expect(
      (await apiError(client.getProjectApiKeys("otherorgprojectrefzz", { reveal: true }))).status,
    ).toBe(404);
  });

  it("when api keys are read with reveal, then the service keys are in clear; without reveal the secret key is masked", async () => {
    const s = await start();
    s.orgs[0]!.projects[0]!.serviceKey = "sb_secret_fixedvalueforthetests_12345678";
    const client = api(s, (await login(s)).access_token);
    const ref = "qzdemoprodapiabcdefg";

    const revealed = (await client.getProjectApiKeys(ref, { reveal: true })).data;
    const legacy = revealed.find((k) => k.name === "service_role");
    expect(legacy).toMatchObject({ type: "legacy", id: "service_role" });
    expect(legacy?.api_key?.split(".")).toHaveLength(3);
    const jwtPayload = JSON.parse(
      Buffer.from(legacy!.api_key!.split(".")[1]!, "base64url").toString(),
    ) as Record<string, unknown>;
    expect(jwtPayload).toMatchObject({ role: "service_role", ref });
    const secret = revealed.find((k) => k.type === "secret");
    expect(secret?.secret_jwt_template).toEqual({ role: "service_role" });
    expect(secret?.api_key).toBe("sb_secret_fixedvalueforthetests_12345678");
    expect(revealed.map((k) => k.type)).toEqual(["legacy", "legacy", "publishable", "secret"]);

    const masked = (await client.getProjectApiKeys(ref)).data.find((k) => k.type === "secret");
    expect(masked?.api_key).toMatch(/^sb_secret_\w{4}·+$/);
    expect(masked?.api_key).toHaveLength(secret!.api_key!.length);
  });

  it("when api keys of a paused project are read, then the real 'Failed to fetch project service details' error comes back", async () => {
    const s = await start();
    const err = await apiError(
      api(s, (await login(s)).access_token).getProjectApiKeys("qzdemopausedlegacyuv", {
        reveal: true,
      }),
    );
    expect(err.status).toBe(400);
    expect(err.message).toMatch(/Failed to fetch project service details/);
  });

  it("when health is read, then one entry per service reflects the project's status", async () => {
    const s = await start();
    const token = (await login(s)).access_token;
    const client = api(s, token);
    const healthy = await client.getServicesHealth("qzdemoprodapiabcdefg", { services: ["db"] });
    expect(healthy.data).toEqual([{ name: "db", healthy: true, status: "ACTIVE_HEALTHY" }]);
    const starting = await client.getServicesHealth("qzdemoedgeworkerqrst", {
      services: ["db", "auth"],
    });
    expect(starting.data.map((h) => [h.name, h.status])).toEqual([
      ["db", "COMING_UP"],
      ["auth", "COMING_UP"],
    ]);
    // The repeated form other clients send works too.
    const res = await fetch(
      `${s.url}/v1/projects/qzdemopausedlegacyuv/health?services=db&services=rest`,
      {
        headers: { authorization: `Bearer ${token}` },
      },
    );
    const body = (await res.json()) as Array<{ name: string; healthy: boolean; status: string }>;
    expect(body.map((h) => [h.name, h.healthy, h.status])).toEqual([
      ["db", false, "UNHEALTHY"],
      ["rest", false, "UNHEALTHY"],
    ]);
    const missing = await fetch(`${s.url}/v1/projects/qzdemoprodapiabcdefg/health`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(missing.status).toBe(400);
  });

  it("when there is no or a bogus token, then 401 {message: Unauthorized} is returned", async () => {
    const s = await start();
    const err = await apiError(api(s, "bogus").listAllProjects());
    expect(err.status).toBe(401);
    expect(err.data).toEqual({ message: "Unauthorized" });
    const res = await fetch(`${s.url}/v1/projects`);
    expect(res.status).toBe(401);
  });
});

describe("rate limits, faults, latency and stats", () => {
  it("when any Management API call is answered, then it carries the X-RateLimit headers", async () => {
    const s = await start();
    const client = api(s, (await login(s)).access_token);
    const first = await client.listAllProjects();
    const second = await client.listAllProjects();
    expect(first.headers.get("x-ratelimit-limit")).toBe("120");
    expect(first.headers.get("x-ratelimit-remaining")).toBe("119");
    expect(second.headers.get("x-ratelimit-remaining")).toBe("118");
    expect(Number(first.headers.get("x-ratelimit-reset"))).toBeGreaterThan(0);
  });

  it("when the per-minute limit is exceeded, then 429 Too Many Requests is returned until the window resets", async () => {
    const clock = manualClock();
    const s = await start({ rateLimitPerMinute: 3, now: clock.now });
    const tokens = await login(s);
    const client = api(s, tokens.access_token);
    for (let i = 0; i < 3; i++) await client.listAllOrganizations();
    clock.advance(20_000);
    const err = await apiError(client.listAllOrganizations());
    expect(err.status).toBe(429);
    expect(err.data).toEqual({ message: "Too Many Requests" });
    expect(err.headers.get("x-ratelimit-remaining")).toBe("0");
    expect(err.headers.get("x-ratelimit-reset")).toBe("40");

    // A refreshed token shares the org's window.
    const res = await tokenRequest(s, {
      grant_type: "refresh_token",
      refresh_token: tokens.refresh_token,
    });
    const fresh = (await res.json()) as Tokens;
    expect((await apiError(api(s, fresh.access_token).listAllProjects())).status).toBe(429);

    clock.advance(40_000);
    expect((await client.listAllOrganizations()).status).toBe(200);
    expect(s.stats().rateLimited).toBe(2);
  });

  it("when a 429 fault is injected for a path prefix, then only matching calls fail, N times, with the reset header", async () => {
    const s = await start();
    const client = api(s, (await login(s)).access_token);
    s.injectFault({ status: 429, count: 2, pathPrefix: "/v1/projects", resetSeconds: 7 });
    expect((await client.listAllOrganizations()).status).toBe(200);
    for (let i = 0; i < 2; i++) {
      const err = await apiError(client.listAllProjects());
      expect(err.status).toBe(429);
      expect(err.headers.get("x-ratelimit-reset")).toBe("7");
    }
    expect((await client.listAllProjects()).status).toBe(200);
  });

  it("when 500 and 401 faults are injected, then the next calls fail with those statuses and then recover", async () => {
    const s = await start();
    const client = api(s, (await login(s)).access_token);
    s.injectFault({ status: 500 });
    s.injectFault({ status: 401 });
    expect((await apiError(client.listAllProjects())).status).toBe(500);
    const unauthorized = await apiError(client.listAllProjects());
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.data).toEqual({ message: "Unauthorized" });
    expect((await client.listAllProjects()).status).toBe(200);
  });

  it("when a fault targets the token endpoint by prefix, then the refresh fails once", async () => {
    const s = await start();
    const tokens = await login(s);
    s.injectFault({ status: 500, pathPrefix: "/v1/oauth/token" });
    const failed = await tokenRequest(s, {
      grant_type: "refresh_token",
      refresh_token: tokens.refresh_token,
    });
    expect(failed.status).toBe(500);
    const ok = await tokenRequest(s, {
      grant_type: "refresh_token",
      refresh_token: tokens.refresh_token,
    });
    expect(ok.status).toBe(201);
  });

  it("when latency is configured, then every request takes at least that long", async () => {
    const s = await start({ latencyMs: 60 });
    const started = performance.now();
    await fetch(`${s.url}/v1/projects`);
    expect(performance.now() - started).toBeGreaterThanOrEqual(55);
  });

  it("when calls are made, then stats count them per route template and org, and resetStats clears them", async () => {
    const s = await start();
    const client = api(s, (await login(s)).access_token);
    await client.getProject("qzdemoprodapiabcdefg");
    await client.getProject("qzdemostagingwebhijk");
    await client.getProjectApiKeys("qzdemoprodapiabcdefg", { reveal: true });
    const stats = s.stats();
    expect(stats.managementCalls).toBe(3);
    expect(stats.tokenRequests).toBe(1);
    expect(stats.byRoute["GET /v1/projects/{ref}"]).toBe(2);
    expect(stats.byRoute["GET /v1/projects/{ref}/api-keys"]).toBe(1);
    expect(stats.byRoute["GET /v1/oauth/authorize"]).toBe(1);
    expect(stats.byOrg).toEqual({ "demo-org": 3 });
    s.resetStats();
    expect(s.stats()).toMatchObject({
      managementCalls: 0,
      tokenRequests: 0,
      refreshes: 0,
      byRoute: {},
    });
  });
});

describe("project API keys (create, read, delete)", () => {
  const REF = "qzdemoprodapiabcdefg";

  it("when a secret key is created with reveal, then it answers 201 with the spec's ApiKeyResponse, lists it, and masks it without reveal", async () => {
    const s = await start();
    const client = api(s, (await login(s)).access_token);
    const created = await client.createProjectApiKey(
      REF,
      { type: "secret", name: "supafana_grafana_abcd1234", description: "for Grafana" },
      { reveal: true },
    );
    expect(created.status).toBe(201);
    const key = created.data as unknown as Record<string, unknown>;
    expect(Object.keys(key).sort()).toEqual(
      [
        "api_key",
        "description",
        "hash",
        "id",
        "inserted_at",
        "name",
        "prefix",
        "secret_jwt_template",
        "type",
        "updated_at",
      ].sort(),
    );
    expect(key).toMatchObject({
      name: "supafana_grafana_abcd1234",
      type: "secret",
      description: "for Grafana",
      secret_jwt_template: { role: "service_role" },
    });
    expect(key.api_key).toMatch(/^sb_secret_[A-Za-z0-9]{22}_[A-Za-z0-9]{8}$/);
    expect(key.id).toMatch(/^[0-9a-f-]{36}$/);

    const masked = (await client.getProjectApiKeys(REF)).data as unknown as Array<
      Record<string, unknown>
    >;
    const listed = masked.find((k) => k.id === key.id);
    expect(listed?.api_key).toContain("·");
    const revealed = (await client.getProjectApiKeys(REF, { reveal: true }))
      .data as unknown as Array<Record<string, unknown>>;
    expect(revealed.find((k) => k.id === key.id)?.api_key).toBe(key.api_key);

    const deleted = await client.deleteProjectApiKey(REF, String(key.id), {
      reason: "rotating_key",
    });
    expect(deleted.status).toBe(200);
    const after = (await client.getProjectApiKeys(REF)).data as unknown as Array<
      Record<string, unknown>
    >;
    expect(after.some((k) => k.id === key.id)).toBe(false);
    await expect(
      client.deleteProjectApiKey(REF, String(key.id), { reason: "again" }),
    ).rejects.toMatchObject({ status: 404 });
  });

  it("when the grant lacks secrets:write, then creating and deleting answer 403 while reading still works", async () => {
    const s = await start();
    s.setGrantScopes("demo-org", ["secrets:read"]);
    const client = api(s, (await login(s)).access_token);
    await expect(
      client.createProjectApiKey(REF, { type: "secret", name: "supafana_grafana_abcd1234" }),
    ).rejects.toMatchObject({ status: 403 });
    await expect(
      client.deleteProjectApiKey(REF, "22222222-2222-4222-8222-222222222222"),
    ).rejects.toMatchObject({ status: 403 });
    expect((await client.getProjectApiKeys(REF)).status).toBe(200);
    s.setGrantScopes("demo-org", []);
    await expect(client.getProjectApiKeys(REF)).rejects.toMatchObject({ status: 403 });
  });

  it("when the body breaks the spec, then it answers 400", async () => {
    const s = await start();
    const client = api(s, (await login(s)).access_token);
    for (const body of [
      { type: "secret", name: "Bad-Name" },
      { type: "secret", name: "abc" },
      { type: "secret", name: `a${"b".repeat(64)}` },
      { type: "other", name: "good_name" },
    ]) {
      await expect(
        client.createProjectApiKey(REF, body as { type: "secret"; name: string }),
      ).rejects.toMatchObject({ status: 400 });
    }
  });

  it("when the project has only legacy keys, then it lists no new-style key and refuses to create one", async () => {
    const org = makeDemoOrg();
    const project = org.projects[0];
    if (!project) throw new Error("no project");
    project.legacyOnly = true;
    const s = await start({ orgs: [org] });
    const client = api(s, (await login(s)).access_token);
    const keys = (await client.getProjectApiKeys(project.ref)).data as unknown as Array<{
      type: string;
    }>;
    expect(keys.map((k) => k.type)).toEqual(["legacy", "legacy"]);
    await expect(
      client.createProjectApiKey(project.ref, { type: "secret", name: "supafana_grafana_x1" }),
    ).rejects.toMatchObject({ status: 400 });
  });
});
