/**
 * `POST /api/projects/{ref}/grafana/session` through the handler: who gets a ticket, with which
 * Grafana role (read from the Supabase simulator's member roles at issue time), and that the
 * ticket is what the gateway expects.
 */
import { randomUUID } from "node:crypto";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { listAudit } from "../../../lib/audit.js";
import { SESSION_COOKIE, bindUser, startSession } from "../../../lib/auth/session.js";
import { gatewayRoutes } from "../../../lib/gateway/consumer.js";
import { verifyToken, TICKET_TTL_SECONDS } from "../../../lib/grafana-signin/token.js";
import { startLocalGateway } from "../../../local/gateway-standin.js";
import { startGrafanaStandIn } from "../../../local/grafana-standin.js";
import type { SimOrg } from "../../../local/simulators/supabase.js";
import { TestClient } from "../../helpers/client.js";
import { TestClock } from "../billing/helpers.js";
import {
  provisioningTestDefinitions,
  startProvisioningEnv,
  type OrgEnv,
  type ProvisioningEnv,
} from "./harness.js";

let env: ProvisioningEnv;
const clock = new TestClock();

beforeAll(async () => {
  env = await startProvisioningEnv({ clock });
});
afterAll(async () => {
  await env.close();
});

const sessionRoute = (ref: string) => `/api/projects/${ref}/grafana/session`;

/** A verified session for another member of the org (added to the simulator with that role). */
async function memberClient(
  o: OrgEnv,
  role: string,
  email: string | null = `${randomUUID().slice(0, 8)}@members.example`,
): Promise<{ client: TestClient; userId: string; member: SimOrg["members"][number] }> {
  const userId = randomUUID();
  const member = {
    user_id: userId,
    user_name: `member-${role.toLowerCase()}`,
    ...(email === null ? {} : { email }),
    role_name: role,
    mfa_enabled: false,
  };
  o.org.members.push(member);
  const { session, cookie } = await startSession(env.services, o.slug);
  await bindUser(env.services, session.id, { id: userId, name: member.user_name, role });
  const client = new TestClient(provisioningTestDefinitions, o.services);
  client.cookies.set(SESSION_COOKIE, cookie.value);
  return { client, userId, member };
}

function ticketOf(url: string, ref: string) {
  const parsed = new URL(url);
  expect(parsed.origin).toBe(`https://${ref}.${env.services.config.GRAFANA_DOMAIN}`);
  expect(parsed.pathname).toBe("/_supafana/session");
  const ticket = parsed.searchParams.get("ticket") ?? "";
  const result = verifyToken(env.services.config.GRAFANA_SESSION_KEYS, ticket, {
    typ: "ticket",
    aud: ref,
    now: clock.seconds(),
  });
  if (!result.ok) throw new Error(`ticket refused: ${result.reason}`);
  return result.claims;
}

describe("opening Grafana (a one-time sign-in ticket)", () => {
  it("when the owner opens a Running instance, then they get only a URL with a ticket for that host as Admin", async () => {
    // Members are cached for a minute: this org is new, so its member list is read now.
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    await o.provision(ref);

    const res = await o.client.post(sessionRoute(ref));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(Object.keys(res.body as object)).toEqual(["url"]);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.text).not.toMatch(/password/i);

    const claims = ticketOf((res.body as { url: string }).url, ref);
    expect(claims).toMatchObject({
      typ: "ticket",
      aud: ref,
      sub: o.userId,
      email: o.email,
      name: "ada",
      role: "Admin",
      org: o.slug,
    });
    expect(claims.exp - claims.iat).toBe(TICKET_TTL_SECONDS);
    expect(claims.jti).toMatch(/^[A-Za-z0-9_-]{16,64}$/);
    // Each call is a new ticket.
    const again = ticketOf(
      ((await o.client.post(sessionRoute(ref))).body as { url: string }).url,
      ref,
    );
    expect(again.jti).not.toBe(claims.jti);
  });

  it("when members of each Supabase role open it, then the Grafana role follows the mapping", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    await o.provision(ref);
    const cases: Array<[string, string]> = [
      ["Administrator", "Admin"],
      ["Developer", "Editor"],
      ["Read-only", "Viewer"],
      ["Billing-only", "Viewer"],
    ];
    const members = await Promise.all(cases.map(([role]) => memberClient(o, role)));
    const noEmail = await memberClient(o, "Developer", null);
    // The simulator's member list was read (and cached) by the provisioning: let it expire.
    clock.advance(61_000);
    for (const [i, [, expected]] of cases.entries()) {
      const m = members[i];
      if (m === undefined) throw new Error("no member");
      const res = await m.client.post(sessionRoute(ref));
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const claims = ticketOf((res.body as { url: string }).url, ref);
      expect(claims.role).toBe(expected);
      expect(claims.sub).toBe(m.userId);
      expect(claims.email).toBe(m.member.email);
    }
    const res = await noEmail.client.post(sessionRoute(ref));
    expect(res.status).toBe(200);
    expect(ticketOf((res.body as { url: string }).url, ref)).toMatchObject({
      email: "",
      role: "Editor",
    });
  });

  it("when a member's role changes or they leave the org, then the next ticket follows Supabase", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    await o.provision(ref);
    const m = await memberClient(o, "Developer");
    clock.advance(61_000);
    expect(ticketOf((await m.client.post(sessionRoute(ref))).body.url as string, ref).role).toBe(
      "Editor",
    );

    m.member.role_name = "Owner";
    clock.advance(61_000);
    expect(ticketOf((await m.client.post(sessionRoute(ref))).body.url as string, ref).role).toBe(
      "Admin",
    );

    o.org.members.splice(o.org.members.indexOf(m.member), 1);
    clock.advance(61_000);
    const gone = await m.client.post(sessionRoute(ref));
    expect(gone.status).toBe(403);
    expect(gone.body).toMatchObject({ error: { code: "forbidden" } });
  });

  it("when the project is another org's, not provisioned or not Running, then it is 403, 404 or 409", async () => {
    const a = await env.newOrg(2);
    const b = await env.newOrg(1);
    const bRef = b.refs[0] ?? "";
    await b.provision(bRef);

    const other = await a.client.post(sessionRoute(bRef));
    expect(other.status).toBe(403);
    expect(other.text).not.toContain("ticket");

    const [notProvisioned = "", pending = ""] = a.refs;
    const none = await a.client.post(sessionRoute(notProvisioned));
    expect(none.status).toBe(404);

    // Requested, not yet deployed (the driver has not run).
    expect((await a.client.put(`/api/projects/${pending}/grafana`)).status).toBe(202);
    const notRunning = await a.client.post(sessionRoute(pending));
    expect(notRunning.status).toBe(409);
    expect(notRunning.body).toMatchObject({ error: { code: "instance_not_running" } });
  });

  it("when there is no session or no verified user, or the ref is malformed, then it is refused", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    const anonymous = new TestClient(provisioningTestDefinitions, o.services);
    expect((await anonymous.post(sessionRoute(ref))).status).toBe(401);

    const { cookie } = await startSession(env.services, o.slug);
    const unverified = new TestClient(provisioningTestDefinitions, o.services);
    unverified.cookies.set(SESSION_COOKIE, cookie.value);
    const res = await unverified.post(sessionRoute(ref));
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({ error: { code: "verification_required" } });

    expect((await o.client.post(sessionRoute("NOT-A-REF"))).status).toBe(400);
    // The CSRF check applies (a POST from another origin).
    expect(
      (await o.client.post(sessionRoute(ref), { headers: { origin: "https://evil.example" } }))
        .status,
    ).toBe(403);
  });

  it("when an operator revokes an org's sign-ins, then the pushed gateway config refuses its hosts' older sessions", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    await o.provision(ref);
    const other = await env.newOrg(1);
    const otherRef = other.refs[0] ?? "";
    await other.provision(otherRef);

    const res = await o.client.post(`/api/ops/orgs/${o.slug}/grafana-sessions/revoke`, {
      headers: { "x-ops-actor": "on-call" },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const at = Date.parse((res.body as { notBefore: string }).notBefore) / 1000;
    expect(Number.isInteger(at)).toBe(true);
    expect(at).toBeGreaterThanOrEqual(clock.seconds());
    await o.driver.drain();

    const { notBefore } = await gatewayRoutes(env.services);
    expect(notBefore.get(ref)).toBe(at);
    expect(notBefore.has(otherRef)).toBe(false);
    const applied = env.platform.gateway?.appliedConfig() ?? "";
    expect(applied).toContain(`${ref}.${env.services.config.GRAFANA_DOMAIN} ${at};`);
    expect(applied).not.toContain(`${otherRef}.${env.services.config.GRAFANA_DOMAIN} ${at};`);
    const entries = await listAudit(env.services, clock.now(), 100);
    expect(
      entries.some((e) => e.action === "org.grafana_sessions_revoked" && e.target === o.slug),
    ).toBe(true);

    // An operator must name themselves.
    expect((await o.client.post(`/api/ops/orgs/${o.slug}/grafana-sessions/revoke`)).status).toBe(
      400,
    );
  });

  it("when the link is followed through the local host's gateway stand-in, then the Grafana stand-in shows the member", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    await o.provision(ref);
    const grafana = await startGrafanaStandIn();
    const gateway = await startLocalGateway({
      services: () => env.services,
      routed: () => new Set(env.platform.gateway?.routes().keys() ?? []),
      grafanaPort: grafana.port,
    });
    try {
      const url = new URL(((await o.client.post(sessionRoute(ref))).body as { url: string }).url);
      const host = url.hostname;
      const get = (path: string, cookie?: string) =>
        fetchVia(gateway.port, host, path, cookie ? { cookie } : {});
      const exchanged = await get(`${url.pathname}${url.search}`);
      expect(exchanged.status).toBe(302);
      const cookie = (exchanged.headers["set-cookie"]?.[0] ?? "").split(";")[0] ?? "";
      expect(cookie.startsWith("__Host-supafana_grafana=")).toBe(true);
      expect((await get(`${url.pathname}${url.search}`)).headers["x-supafana-signin"]).toBe("used");

      const home = await get("/", cookie);
      expect(home.status).toBe(200);
      expect(home.body).toContain("Signed in as <b>ada</b>");
      expect(grafana.seen.at(-1)?.identity).toEqual({
        login: o.userId,
        email: o.email,
        name: "ada",
        role: "Admin",
      });
      expect((await get("/")).status).toBe(401);
      expect(
        (await fetchVia(gateway.port, `${"z".repeat(20)}.grafana.test`, "/", { cookie })).status,
      ).toBe(404);
    } finally {
      await gateway.close();
      await grafana.close();
    }
  });
});

function fetchVia(
  port: number,
  host: string,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: "127.0.0.1", port, path, headers: { host, ...headers } },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}
