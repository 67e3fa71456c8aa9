/**
 * The Grafana sign-in through a real nginx with the njs module (Debian's libnginx-mod-http-js)
 * running the rendered gateway config, in front of the local Grafana stand-in.
 */
import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { GATEWAY_SESSION_COOKIE } from "../../../lib/gateway/signin-njs.js";
import {
  signToken,
  type SigninClaims,
  type SigninKeySet,
} from "../../../lib/grafana-signin/token.js";
import {
  APP_URL,
  SIGNIN_DOMAIN,
  startSigninGateway,
  type Reply,
  type SigninGateway,
} from "../../helpers/signin-gateway.js";
import { refOf } from "./helpers.js";

const REF_A = refOf(1_000_003);
const REF_B = refOf(2_000_029);
const HOST_A = `${REF_A}.${SIGNIN_DOMAIN}`;
const HOST_B = `${REF_B}.${SIGNIN_DOMAIN}`;

const key = () => new Uint8Array(randomBytes(32));
const K1 = key();
const K2 = key();
const keysOf = (entries: Array<[string, Uint8Array]>): SigninKeySet => ({
  current:
    entries
      .map(([kid]) => kid)
      .sort()
      .at(-1) ?? "",
  keys: new Map(entries),
});
const ONLY_K1 = keysOf([["2026-01", K1]]);

const nowS = () => Math.floor(Date.now() / 1000);
const USER = {
  sub: "5b0f2c1e-6d1a-4f0e-9a4b-1c2d3e4f5a60",
  email: "ada@demo.example",
  name: "ada",
  org: "demo-org",
};

function ticket(keys: SigninKeySet, over: Partial<SigninClaims> = {}, aud: string = REF_A): string {
  const iat = nowS();
  return signToken(keys, {
    typ: "ticket",
    aud,
    ...USER,
    role: "Editor",
    iat,
    exp: iat + 60,
    jti: randomBytes(18).toString("base64url"),
    ...over,
  });
}

function sessionCookie(keys: SigninKeySet, over: Partial<SigninClaims> = {}): string {
  const iat = nowS();
  return signToken(keys, {
    typ: "session",
    aud: REF_A,
    ...USER,
    role: "Viewer",
    iat,
    exp: iat + 3600,
    ...over,
  });
}

function cookieFrom(reply: Reply): string {
  const raw = reply.headers["set-cookie"];
  const line = (Array.isArray(raw) ? raw : [raw ?? ""])[0] ?? "";
  const m = new RegExp(`^${GATEWAY_SESSION_COOKIE.replace(/[-]/g, "\\-")}=([^;]+)`).exec(line);
  if (m?.[1] === undefined) throw new Error(`no session cookie in ${JSON.stringify(raw)}`);
  return m[1];
}

const withCookie = (value: string) => ({
  cookie: `theme=dark; ${GATEWAY_SESSION_COOKIE}=${value}`,
});

describe("Grafana sign-in on the gateway (real nginx + njs)", () => {
  let gw: SigninGateway;
  const hits = () => gw.standIn.seen.length;

  const expectRefused = (reply: Reply, reason: string, status = 401) => {
    expect(reply.status, reply.body).toBe(status);
    expect(reply.headers["x-supafana-signin"]).toBe(reason);
    expect(reply.headers["content-type"]).toMatch(/^text\/html/);
    expect(reply.body).toContain(`href="${APP_URL}"`);
    expect(reply.body).not.toContain("Grafana (stand-in)");
    expect(reply.headers["set-cookie"]).toBeUndefined();
  };

  beforeAll(async () => {
    gw = await startSigninGateway({ refs: [REF_A, REF_B], keys: ONLY_K1 });
  });

  afterAll(async () => {
    await gw.stop();
  });

  it("when a valid ticket is exchanged, then the host-only cookie is set and Grafana gets exactly that user", async () => {
    const exchanged = await gw.get(HOST_A, `/_supafana/session?ticket=${ticket(ONLY_K1)}`);
    expect(exchanged.status, exchanged.body).toBe(302);
    expect(exchanged.headers.location).toMatch(new RegExp(`^https://${HOST_A}(:\\d+)?/$`));
    const setCookie = String(exchanged.headers["set-cookie"]);
    expect(setCookie).toMatch(
      new RegExp(
        `^${GATEWAY_SESSION_COOKIE}=[^;]+; Path=/; Max-Age=28800; HttpOnly; Secure; SameSite=Lax$`,
      ),
    );
    expect(setCookie).not.toMatch(/Domain=/i);

    const before = hits();
    const page = await gw.get(HOST_A, "/d/home", withCookie(cookieFrom(exchanged)));
    expect(page.status, page.body).toBe(200);
    expect(page.body).toContain("Signed in as <b>ada</b>");
    expect(hits()).toBe(before + 1);
    const seen = gw.standIn.seen.at(-1);
    expect(seen?.url).toBe("/d/home");
    expect(seen?.identity).toEqual({
      login: USER.sub,
      email: USER.email,
      name: USER.name,
      role: "Editor",
    });
  });

  it("when the same ticket is exchanged twice (even at once), then only one exchange succeeds", async () => {
    const t = ticket(ONLY_K1);
    const replies = await Promise.all(
      Array.from({ length: 6 }, () => gw.get(HOST_A, `/_supafana/session?ticket=${t}`)),
    );
    expect(replies.filter((r) => r.status === 302)).toHaveLength(1);
    for (const r of replies.filter((x) => x.status !== 302)) expectRefused(r, "used");
    const again = await gw.get(HOST_A, `/_supafana/session?ticket=${t}`);
    expectRefused(again, "used");
  });

  it("when a ticket is forged, expired, for another ref, of the wrong type or missing, then it is refused", async () => {
    const stranger = keysOf([["2026-01", key()]]);
    const good = ticket(ONLY_K1);
    const [kid, payload] = good.split(".");
    const tampered = `${kid}.${Buffer.from(
      JSON.stringify({
        ...JSON.parse(Buffer.from(payload ?? "", "base64url").toString()),
        role: "Admin",
      }),
    ).toString("base64url")}.${good.split(".")[2]}`;
    const cases: Array<[string, string]> = [
      [ticket(stranger), "bad_signature"],
      [tampered, "bad_signature"],
      [ticket(keysOf([["2099-99", K1]])), "unknown_key"],
      [ticket(ONLY_K1, { iat: nowS() - 120, exp: nowS() - 60 }), "expired"],
      [ticket(ONLY_K1, {}, REF_B), "wrong_host"],
      [sessionCookie(ONLY_K1), "wrong_type"],
      ["not-a-token", "malformed"],
    ];
    const before = hits();
    for (const [t, reason] of cases) {
      expectRefused(await gw.get(HOST_A, `/_supafana/session?ticket=${t}`), reason);
    }
    expectRefused(await gw.get(HOST_A, "/_supafana/session"), "missing");
    expect(hits()).toBe(before);
  });

  it("when a request has no cookie, or a forged, expired or other-ref one, then Grafana is never reached", async () => {
    const before = hits();
    expectRefused(await gw.get(HOST_A, "/"), "missing");
    expectRefused(
      await gw.get(HOST_A, "/api/dashboards/home", { cookie: "grafana_session=x" }),
      "missing",
    );
    expectRefused(
      await gw.get(HOST_A, "/", withCookie(sessionCookie(keysOf([["2026-01", key()]])))),
      "bad_signature",
    );
    expectRefused(
      await gw.get(HOST_A, "/", withCookie(sessionCookie(ONLY_K1, { exp: nowS() - 1 }))),
      "expired",
    );
    expectRefused(await gw.get(HOST_A, "/", withCookie(ticket(ONLY_K1))), "wrong_type");
    expect(hits()).toBe(before);
  });

  it("when a cookie made on ref A is sent to ref B, then B refuses it", async () => {
    const exchanged = await gw.get(HOST_A, `/_supafana/session?ticket=${ticket(ONLY_K1)}`);
    const cookie = cookieFrom(exchanged);
    expect((await gw.get(HOST_A, "/", withCookie(cookie))).status).toBe(200);
    const before = hits();
    expectRefused(await gw.get(HOST_B, "/", withCookie(cookie)), "wrong_host");
    expect(hits()).toBe(before);
  });

  it("when a client sends X-WEBAUTH-* headers, then they never reach Grafana", async () => {
    const cookie = sessionCookie(ONLY_K1);
    const before = hits();
    for (const [name, value] of [
      ["X-WEBAUTH-USER", "admin"],
      ["x-webauth-role", "Admin"],
      ["X-WEBAUTH-GROUPS", "admins"],
    ] as const) {
      expectRefused(
        await gw.get(HOST_A, "/", { ...withCookie(cookie), [name]: value }),
        "identity_header",
        400,
      );
      expectRefused(await gw.get(HOST_A, "/", { [name]: value }), "identity_header", 400);
    }
    // nginx drops header names with underscores; the verified identity still arrives.
    const ok = await gw.get(HOST_A, "/", { ...withCookie(cookie), X_WEBAUTH_USER: "admin" });
    expect(ok.status).toBe(200);
    expect(hits()).toBe(before + 1);
    const seen = gw.standIn.seen.at(-1);
    expect(seen?.identity.login).toBe(USER.sub);
    expect(seen?.identity.role).toBe("Viewer");
    expect(
      Object.keys(seen?.headers ?? {})
        .filter((h) => /webauth/i.test(h))
        .sort(),
    ).toEqual(["x-webauth-email", "x-webauth-name", "x-webauth-role", "x-webauth-user"]);
  });

  it("when the keys rotate, then sessions of the previous key work until it is dropped", async () => {
    const oldCookie = cookieFrom(
      await gw.get(HOST_A, `/_supafana/session?ticket=${ticket(ONLY_K1)}`),
    );
    expect(oldCookie.startsWith("2026-01.")).toBe(true);

    const both = keysOf([
      ["2026-01", K1],
      ["2026-02", K2],
    ]);
    await gw.reload(both);
    expect((await gw.get(HOST_A, "/", withCookie(oldCookie))).status).toBe(200);
    // A ticket signed with the new key works, and the new cookie is signed with the newest key.
    const newCookie = cookieFrom(await gw.get(HOST_A, `/_supafana/session?ticket=${ticket(both)}`));
    expect(newCookie.startsWith("2026-02.")).toBe(true);
    expect((await gw.get(HOST_A, "/", withCookie(newCookie))).status).toBe(200);

    await gw.reload(keysOf([["2026-02", K2]]));
    expectRefused(await gw.get(HOST_A, "/", withCookie(oldCookie)), "unknown_key");
    expect((await gw.get(HOST_A, "/", withCookie(newCookie))).status).toBe(200);
  });

  it("when an org's sign-ins are revoked, then sessions and tickets issued before are refused", async () => {
    const keys = keysOf([["2026-02", K2]]);
    const at = nowS();
    const before = sessionCookie(keys, { iat: at - 10 });
    const pendingTicket = ticket(keys, { iat: at - 5 });
    await gw.reload(keys, new Map([[REF_A, at]]));
    expectRefused(await gw.get(HOST_A, "/", withCookie(before)), "revoked");
    expectRefused(await gw.get(HOST_A, `/_supafana/session?ticket=${pendingTicket}`), "revoked");
    // Other hosts are untouched; a sign-in after the revocation works.
    expect(
      (await gw.get(HOST_B, "/", withCookie(sessionCookie(keys, { aud: REF_B, iat: at - 10 }))))
        .status,
    ).toBe(200);
    const fresh = await gw.get(HOST_A, `/_supafana/session?ticket=${ticket(keys, { iat: at })}`);
    expect(fresh.status).toBe(302);
    expect((await gw.get(HOST_A, "/", withCookie(cookieFrom(fresh)))).status).toBe(200);
  });

  it("when a project is deprovisioned (its route leaves the map), then its valid session gets a 404, never Grafana", async () => {
    const keys = keysOf([["2026-02", K2]]);
    const cookieB = sessionCookie(keys, { aud: REF_B });
    expect((await gw.get(HOST_B, "/", withCookie(cookieB))).status).toBe(200);
    await gw.reload(keys, new Map(), [REF_A]);
    const before = hits();
    const gone = await gw.get(HOST_B, "/", withCookie(cookieB));
    expect(gone.status).toBe(404);
    expect(JSON.parse(gone.body)).toMatchObject({ error: { code: "not_found" } });
    const exchange = await gw.get(HOST_B, `/_supafana/session?ticket=${ticket(keys, {}, REF_B)}`);
    expect(exchange.status).toBe(404);
    expect(hits()).toBe(before);
  });

  it("when tickets are exchanged, then each leaves one used-ticket marker", () => {
    expect(readdirSync(gw.usedTicketsDir).every((f) => /^[A-Za-z0-9_-]{16,64}$/.test(f))).toBe(
      true,
    );
    expect(readdirSync(gw.usedTicketsDir).length).toBeGreaterThanOrEqual(5);
  });
});
