import { randomBytes } from "node:crypto";

import fc from "fast-check";
import { describe, expect, it } from "vitest";

import {
  gatewayKeysFile,
  grafanaRoleFor,
  signToken,
  verifyToken,
  type SigninClaims,
  type SigninKeySet,
  type VerifyOptions,
} from "../../../lib/grafana-signin/token.js";

const REF = "abcdefghijklmnopqrst";
const OTHER = "tsrqponmlkjihgfedcba";
const NOW = 1_800_000_000;
const key = () => new Uint8Array(randomBytes(32));
const set = (...entries: Array<[string, Uint8Array]>): SigninKeySet => ({
  current:
    entries
      .map(([k]) => k)
      .sort()
      .at(-1) ?? "",
  keys: new Map(entries),
});
const K1 = key();
const KEYS = set(["2026-01", K1]);

const claims = (over: Partial<SigninClaims> = {}): SigninClaims => ({
  typ: "ticket",
  aud: REF,
  sub: "user-1",
  email: "ada@example.com",
  name: "ada",
  role: "Editor",
  org: "acme",
  iat: NOW,
  exp: NOW + 60,
  jti: "abcdefghijklmnopqrstuv",
  ...over,
});
const opts: VerifyOptions = { typ: "ticket", aud: REF, now: NOW + 1 };

describe("grafanaRoleFor", () => {
  it.each([
    ["Owner", "Admin"],
    ["Administrator", "Admin"],
    ["administrator", "Admin"],
    ["Developer", "Editor"],
    [" developer ", "Editor"],
    ["Read-only", "Viewer"],
    ["Billing-only", "Viewer"],
    ["", "Viewer"],
    ["Owner of everything", "Viewer"],
  ])("when the Supabase role is %j, then the Grafana role is %s", (role, expected) => {
    expect(grafanaRoleFor(role)).toBe(expected);
  });
});

describe("signToken / verifyToken", () => {
  it("when a token is signed, then it verifies with its claims and names its kid", () => {
    const token = signToken(KEYS, claims());
    expect(token.split(".")[0]).toBe("2026-01");
    expect(verifyToken(KEYS, token, opts)).toEqual({ ok: true, claims: claims() });
  });

  it("when a key set has several kids, then the greatest signs and each verifies its own", () => {
    const K2 = key();
    const both = set(["2026-01", K1], ["2026-02", K2]);
    const oldToken = signToken(KEYS, claims());
    const newToken = signToken(both, claims());
    expect(newToken.startsWith("2026-02.")).toBe(true);
    expect(verifyToken(both, oldToken, opts).ok).toBe(true);
    expect(verifyToken(both, newToken, opts).ok).toBe(true);
    // The old key dropped: its tokens are refused.
    expect(verifyToken(set(["2026-02", K2]), oldToken, opts)).toEqual({
      ok: false,
      reason: "unknown_key",
    });
  });

  it.each<
    [string, (t: string) => string, SigninKeySet | undefined, Partial<VerifyOptions>, string]
  >([
    ["missing", () => "", undefined, {}, "missing"],
    ["not three parts", (t) => t.split(".").slice(0, 2).join("."), undefined, {}, "malformed"],
    ["too long", (t) => t + "A".repeat(3000), undefined, {}, "malformed"],
    ["a bad kid", (t) => `bad kid${t.slice(t.indexOf("."))}`, undefined, {}, "malformed"],
    ["signed by a stranger", (t) => t, set(["2026-01", key()]), {}, "bad_signature"],
    [
      "a changed payload",
      (t) => {
        const [kid, payload, sig] = t.split(".");
        const c = JSON.parse(Buffer.from(payload ?? "", "base64url").toString()) as SigninClaims;
        const forged = Buffer.from(JSON.stringify({ ...c, role: "Admin" })).toString("base64url");
        return `${kid}.${forged}.${sig}`;
      },
      undefined,
      {},
      "bad_signature",
    ],
    ["another type", (t) => t, undefined, { typ: "session" }, "wrong_type"],
    ["another ref", (t) => t, undefined, { aud: OTHER }, "wrong_host"],
    ["expired", (t) => t, undefined, { now: NOW + 60 }, "expired"],
    ["issued before a revocation", (t) => t, undefined, { notBefore: NOW + 1 }, "revoked"],
  ])("when the token is %s, then it is refused", (_name, mutate, verifyKeys, over, reason) => {
    const token = mutate(signToken(KEYS, claims()));
    const verifyWith = verifyKeys ?? KEYS;
    expect(verifyToken(verifyWith, token, { ...opts, ...over })).toEqual({ ok: false, reason });
  });

  it("when any byte of a token changes, then it never verifies as something else", () => {
    const token = signToken(KEYS, claims());
    fc.assert(
      fc.property(fc.nat({ max: token.length - 1 }), fc.integer({ min: 1, max: 127 }), (i, d) => {
        const ch = String.fromCharCode((token.charCodeAt(i) + d) % 128);
        const changed = token.slice(0, i) + ch + token.slice(i + 1);
        if (changed === token) return;
        const result = verifyToken(KEYS, changed, opts);
        if (result.ok) expect(result.claims).toEqual(claims());
      }),
    );
  });

  it("when the key set has no usable current kid, then signing throws", () => {
    expect(() => signToken({ current: "nope", keys: new Map() }, claims())).toThrow();
    expect(() => signToken(set(["has.dot", K1]), claims())).toThrow();
  });

  it("when the key set is written for the gateway, then it is the kid → base64url JSON the njs reads", () => {
    const K2 = key();
    const parsed = JSON.parse(gatewayKeysFile(set(["2026-02", K2], ["2026-01", K1]))) as Record<
      string,
      string
    >;
    expect(Object.keys(parsed)).toEqual(["2026-01", "2026-02"]);
    expect(Buffer.from(parsed["2026-01"] ?? "", "base64url")).toEqual(Buffer.from(K1));
  });
});
