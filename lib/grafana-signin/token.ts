/**
 * Signed tokens of the Grafana sign-in: the one-time ticket the Function App issues and the
 * session cookie the gateway mints from it. Both share one format, which the gateway's njs script
 * (`lib/gateway/signin-njs.ts`) verifies with the same key set:
 *
 *     <kid>.<base64url(JSON claims)>.<base64url(HMAC-SHA256(key[kid], "<kid>.<payload>"))>
 *
 * The greatest kid (string order) signs; every kid in the set verifies, so a rotation adds a new
 * kid and drops the old one only once the tokens signed with it have expired. Pure: time comes
 * in as an argument.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/** A kid→key map (32-byte keys), as the `GRAFANA_SESSION_KEYS` setting holds it. */
export interface SigninKeySet {
  /** The kid that signs: the greatest one. */
  current: string;
  keys: ReadonlyMap<string, Uint8Array>;
}

export type TokenType = "ticket" | "session";
export type GrafanaRole = "Admin" | "Editor" | "Viewer";

export interface SigninClaims {
  typ: TokenType;
  /** The project ref the token is good for (its Grafana host). */
  aud: string;
  /** The Supabase user id; Grafana's login name. */
  sub: string;
  /** The member's e-mail ("" when Supabase has none). */
  email: string;
  /** The member's Supabase user name, Grafana's display name. */
  name: string;
  role: GrafanaRole;
  /** The Supabase organization the membership was checked in. */
  org: string;
  /** Seconds since the epoch. */
  iat: number;
  exp: number;
  /** Ticket id, burnt by the gateway on exchange (tickets only). */
  jti?: string;
}

export type VerifyFailure =
  | "missing"
  | "malformed"
  | "unknown_key"
  | "bad_signature"
  | "wrong_type"
  | "wrong_host"
  | "expired"
  | "revoked";

export type VerifyResult =
  { ok: true; claims: SigninClaims } | { ok: false; reason: VerifyFailure };

/** Kids travel inside the token and a file name: letters, digits, `_` and `-` only. */
const KID_RE = /^[A-Za-z0-9_-]{1,64}$/;
/** A ticket lives at most this long: it is used by the browser right after it is issued. */
export const TICKET_TTL_SECONDS = 60;
/** The gateway's session cookie lives this long (the upper bound for a revocation by removal). */
export const SESSION_TTL_SECONDS = 8 * 3600;
/** Hard cap on any session the gateway accepts. */
export const MAX_SESSION_TTL_SECONDS = 12 * 3600;
/** Tokens longer than this are refused before any parsing. */
const MAX_TOKEN_LENGTH = 2048;

const b64url = (data: string | Buffer) => Buffer.from(data).toString("base64url");

function mac(key: Uint8Array, signed: string): Buffer {
  return createHmac("sha256", key).update(signed, "utf8").digest();
}

/** Supabase org role → Grafana role: Owner/Administrator → Admin, Developer → Editor, else Viewer. */
export function grafanaRoleFor(supabaseRole: string): GrafanaRole {
  const r = supabaseRole.trim().toLowerCase();
  if (r === "owner" || r === "administrator") return "Admin";
  if (r === "developer") return "Editor";
  return "Viewer";
}

export function signToken(keys: SigninKeySet, claims: SigninClaims): string {
  const key = keys.keys.get(keys.current);
  if (key === undefined || !KID_RE.test(keys.current)) {
    throw new Error("the signing key set has no usable current kid");
  }
  const payload = b64url(JSON.stringify(claims));
  const signed = `${keys.current}.${payload}`;
  return `${signed}.${mac(key, signed).toString("base64url")}`;
}

const claimsShape = (c: unknown): c is SigninClaims => {
  if (typeof c !== "object" || c === null) return false;
  const o = c as Record<string, unknown>;
  return (
    (o.typ === "ticket" || o.typ === "session") &&
    typeof o.aud === "string" &&
    typeof o.sub === "string" &&
    typeof o.email === "string" &&
    typeof o.name === "string" &&
    (o.role === "Admin" || o.role === "Editor" || o.role === "Viewer") &&
    typeof o.org === "string" &&
    typeof o.iat === "number" &&
    typeof o.exp === "number" &&
    (o.jti === undefined || typeof o.jti === "string")
  );
};

export interface VerifyOptions {
  typ: TokenType;
  /** The ref of the host the token was presented to. */
  aud: string;
  /** Seconds since the epoch. */
  now: number;
  /** Tokens issued before this moment (seconds) are revoked; 0 for none. */
  notBefore?: number;
}

/** Checks signature, type, audience, expiry and revocation, in that order. */
export function verifyToken(
  keys: SigninKeySet,
  token: string | undefined,
  opts: VerifyOptions,
): VerifyResult {
  if (token === undefined || token === "") return { ok: false, reason: "missing" };
  if (token.length > MAX_TOKEN_LENGTH) return { ok: false, reason: "malformed" };
  const parts = token.split(".");
  if (parts.length !== 3) return { ok: false, reason: "malformed" };
  const [kid = "", payload = "", sig = ""] = parts;
  if (!KID_RE.test(kid) || !/^[A-Za-z0-9_-]+$/.test(payload) || !/^[A-Za-z0-9_-]{43}$/.test(sig))
    return { ok: false, reason: "malformed" };
  const key = keys.keys.get(kid);
  if (key === undefined) return { ok: false, reason: "unknown_key" };
  const expected = mac(key, `${kid}.${payload}`);
  const given = Buffer.from(sig, "base64url");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return { ok: false, reason: "bad_signature" };
  }
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  } catch {
    return { ok: false, reason: "malformed" };
  }
  if (!claimsShape(claims)) return { ok: false, reason: "malformed" };
  if (claims.typ !== opts.typ) return { ok: false, reason: "wrong_type" };
  if (claims.aud !== opts.aud) return { ok: false, reason: "wrong_host" };
  if (claims.exp <= opts.now) return { ok: false, reason: "expired" };
  if (claims.iat < (opts.notBefore ?? 0)) return { ok: false, reason: "revoked" };
  return { ok: true, claims };
}

/** The key set as the gateway reads it: JSON `{ "<kid>": "<base64url key>" }`. */
export function gatewayKeysFile(keys: SigninKeySet): string {
  const out: Record<string, string> = {};
  for (const kid of [...keys.keys.keys()].sort()) {
    out[kid] = Buffer.from(keys.keys.get(kid) ?? new Uint8Array()).toString("base64url");
  }
  return `${JSON.stringify(out)}\n`;
}
