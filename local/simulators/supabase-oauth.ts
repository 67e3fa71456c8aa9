/**
 * OAuth 2 state of the Supabase simulator: authorization codes, grants (one per consent, scoped to
 * one organization) and their access and refresh tokens.
 *
 * Behaviour the project relies on:
 * - codes are single use, expire after 5 minutes and are bound to client_id, redirect_uri, the PKCE
 *   challenge and the organization; reusing a code revokes the grant it produced;
 * - token responses are `201 {access_token, refresh_token, expires_in, token_type: "Bearer"}`;
 * - refresh rotates: every refresh returns a new refresh token and the old one stops working (400);
 * - a revoked grant makes its access tokens fail (401 on the Management API) and its refresh token
 *   fail (401 on the token endpoint).
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import { SLUG_PATTERN, type SimOrg } from "./supabase-data.js";

export const CODE_TTL_MS = 5 * 60 * 1000;
const CONSENT_TTL_MS = 10 * 60 * 1000;
const MAX_REDIRECT_AND_STATE = 4096;
const VERIFIER_PATTERN = /^[A-Za-z0-9\-._~]{43,128}$/;
const TOKEN_FIELDS = new Set([
  "grant_type",
  "client_id",
  "client_secret",
  "code",
  "code_verifier",
  "redirect_uri",
  "refresh_token",
  "resource",
  "scope",
]);

export interface OAuthOptions {
  clientId: string;
  clientSecret: string;
  accessTokenTtlSeconds: number;
  /** When true (default), `code_challenge` is required on authorize. */
  requirePkce: boolean;
  /** When set, authorize only accepts these redirect URIs (exact match). */
  redirectUris?: string[];
  now: () => number;
  orgs: () => SimOrg[];
}

/** A validated authorize request, waiting for (or given) consent. */
export interface AuthorizeRequest {
  clientId: string;
  redirectUri: string;
  state: string | null;
  challenge?: string;
  method?: "plain" | "S256";
  orgSlug?: string;
}

export type AuthorizeCheck =
  | { kind: "ok"; request: AuthorizeRequest }
  /** Not safe to redirect (bad client or redirect URI): show an error instead. */
  | { kind: "fatal"; message: string }
  /** Redirect back to the client with `error=…`. */
  | { kind: "redirect"; url: string };

interface AuthCode {
  request: AuthorizeRequest;
  orgSlug: string;
  expiresAt: number;
  used: boolean;
  grantId?: string;
}

export interface Grant {
  id: string;
  orgSlug: string;
  clientId: string;
  revoked: boolean;
}

interface AccessToken {
  grantId: string;
  expiresAt: number;
}

interface RefreshToken {
  grantId: string;
  rotated: boolean;
}

export interface TokenResult {
  status: number;
  body: Record<string, unknown>;
  refreshed: boolean;
}

function fail(status: number, message: string): TokenResult {
  return { status, body: { message }, refreshed: false };
}

function sha256url(input: string): string {
  return createHash("sha256").update(input).digest("base64url");
}

function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

/** `raw` as is when it equals `expected`, else its form-decoded value. */
function formDecode(raw: string, expected: string): string {
  if (raw === expected) return raw;
  try {
    return decodeURIComponent(raw.replace(/\+/g, " "));
  } catch {
    return raw;
  }
}

function redirectWith(redirectUri: string, params: Record<string, string | null>): string {
  const url = new URL(redirectUri);
  for (const [k, v] of Object.entries(params)) if (v !== null) url.searchParams.set(k, v);
  return url.toString();
}

export class OAuthState {
  private readonly codes = new Map<string, AuthCode>();
  private readonly grants = new Map<string, Grant>();
  private readonly accessTokens = new Map<string, AccessToken>();
  private readonly refreshTokens = new Map<string, RefreshToken>();
  private readonly pendingConsents = new Map<
    string,
    { request: AuthorizeRequest; expiresAt: number }
  >();

  constructor(private readonly opts: OAuthOptions) {}

  /** Validates `GET /v1/oauth/authorize` query parameters. */
  checkAuthorize(params: URLSearchParams): AuthorizeCheck {
    const clientId = params.get("client_id");
    if (!clientId) return { kind: "fatal", message: "client_id is required" };
    if (clientId !== this.opts.clientId) return { kind: "fatal", message: "Invalid client_id" };
    const redirectUri = params.get("redirect_uri");
    if (!redirectUri) return { kind: "fatal", message: "redirect_uri is required" };
    if (!URL.canParse(redirectUri)) return { kind: "fatal", message: "redirect_uri must be a URL" };
    if (this.opts.redirectUris && !this.opts.redirectUris.includes(redirectUri)) {
      return { kind: "fatal", message: "redirect_uri is not registered for this client" };
    }
    const state = params.get("state");
    if (redirectUri.length + (state?.length ?? 0) > MAX_REDIRECT_AND_STATE) {
      return { kind: "fatal", message: "redirect_uri and state together must not exceed 4 kB" };
    }
    const back = (error: string, description: string): AuthorizeCheck => ({
      kind: "redirect",
      url: redirectWith(redirectUri, { error, error_description: description, state }),
    });

    const responseType = params.get("response_type");
    if (responseType !== "code") {
      return back("unsupported_response_type", "response_type must be code");
    }
    const challenge = params.get("code_challenge") ?? undefined;
    const rawMethod = params.get("code_challenge_method");
    let method: "plain" | "S256" | undefined;
    if (rawMethod === null) method = challenge === undefined ? undefined : "plain";
    else if (rawMethod === "S256" || rawMethod === "sha256") method = "S256";
    else if (rawMethod === "plain") method = "plain";
    else return back("invalid_request", "code_challenge_method must be one of plain, sha256, S256");
    if (challenge === undefined && this.opts.requirePkce) {
      return back("invalid_request", "code_challenge is required");
    }
    if (challenge !== undefined && rawMethod !== null && challenge.length === 0) {
      return back("invalid_request", "code_challenge must not be empty");
    }
    const orgSlug = params.get("organization_slug") ?? undefined;
    if (orgSlug !== undefined) {
      if (!SLUG_PATTERN.test(orgSlug)) {
        return back("invalid_request", "organization_slug must match ^[\\w-]+$");
      }
      if (!this.org(orgSlug)) return back("invalid_request", "Organization not found");
    }
    const request: AuthorizeRequest = { clientId, redirectUri, state };
    if (challenge !== undefined) request.challenge = challenge;
    if (method !== undefined) request.method = method;
    if (orgSlug !== undefined) request.orgSlug = orgSlug;
    return { kind: "ok", request };
  }

  /** Consent given for `orgSlug` (else the preselected org, else the first org): redirect with a code. */
  approve(request: AuthorizeRequest, orgSlug?: string): string {
    const slug = orgSlug ?? request.orgSlug ?? this.opts.orgs()[0]?.slug;
    if (slug === undefined) throw new Error("the simulator has no organization to authorize");
    if (!this.org(slug)) throw new Error(`unknown organization "${slug}"`);
    const code = `sim_code_${randomBytes(18).toString("base64url")}`;
    this.codes.set(code, {
      request,
      orgSlug: slug,
      expiresAt: this.opts.now() + CODE_TTL_MS,
      used: false,
    });
    return redirectWith(request.redirectUri, { code, state: request.state });
  }

  deny(request: AuthorizeRequest): string {
    return redirectWith(request.redirectUri, {
      error: "access_denied",
      error_description: "The user denied the request",
      state: request.state,
    });
  }

  /** Keeps a request while the consent page is shown; returns its id. */
  holdForConsent(request: AuthorizeRequest): string {
    const id = randomUUID();
    this.pendingConsents.set(id, { request, expiresAt: this.opts.now() + CONSENT_TTL_MS });
    return id;
  }

  /** Takes a pending consent request (once). */
  takeConsent(id: string): AuthorizeRequest | undefined {
    const pending = this.pendingConsents.get(id);
    this.pendingConsents.delete(id);
    if (!pending || pending.expiresAt <= this.opts.now()) return undefined;
    return pending.request;
  }

  /** `POST /v1/oauth/token` */
  token(
    authorization: string | undefined,
    contentType: string | undefined,
    body: string,
  ): TokenResult {
    if (!(contentType ?? "").toLowerCase().startsWith("application/x-www-form-urlencoded")) {
      return fail(400, "Content-Type must be application/x-www-form-urlencoded");
    }
    const form = new URLSearchParams(body);
    for (const key of form.keys()) {
      if (!TOKEN_FIELDS.has(key)) return fail(400, `property ${key} should not exist`);
    }
    const client = this.clientFrom(authorization, form);
    if (client !== "ok") return fail(401, client);

    const grantType = form.get("grant_type");
    if (grantType === "authorization_code") return this.exchangeCode(form);
    if (grantType === "refresh_token") return this.refresh(form);
    return fail(
      400,
      "grant_type must be one of the following values: authorization_code, refresh_token",
    );
  }

  /** `POST /v1/oauth/revoke` (JSON `{client_id, client_secret, refresh_token}`) */
  revoke(body: string): { status: number; body?: Record<string, unknown> } {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return { status: 400, body: { message: "Body must be JSON" } };
    }
    const rec = (typeof parsed === "object" && parsed !== null ? parsed : {}) as Record<
      string,
      unknown
    >;
    const { client_id: id, client_secret: secret, refresh_token: refresh } = rec;
    if (typeof id !== "string" || typeof secret !== "string" || typeof refresh !== "string") {
      return {
        status: 400,
        body: { message: "client_id, client_secret and refresh_token are required" },
      };
    }
    if (id !== this.opts.clientId || !safeEqual(secret, this.opts.clientSecret)) {
      return { status: 401, body: { message: "Invalid client credentials" } };
    }
    const token = this.refreshTokens.get(refresh);
    const grant = token ? this.grants.get(token.grantId) : undefined;
    if (grant && grant.clientId === id) grant.revoked = true;
    return { status: 204 };
  }

  /** The org slug an access token grants, or undefined when it is unknown, expired or revoked. */
  orgForAccessToken(token: string): string | undefined {
    const at = this.accessTokens.get(token);
    if (!at || at.expiresAt <= this.opts.now()) return undefined;
    const grant = this.grants.get(at.grantId);
    if (!grant || grant.revoked || !this.org(grant.orgSlug)) return undefined;
    return grant.orgSlug;
  }

  revokeOrg(orgSlug: string): number {
    let n = 0;
    for (const g of this.grants.values()) {
      if (g.orgSlug === orgSlug && !g.revoked) {
        g.revoked = true;
        n++;
      }
    }
    return n;
  }

  expireAccessTokens(): void {
    const now = this.opts.now();
    for (const t of this.accessTokens.values()) t.expiresAt = Math.min(t.expiresAt, now);
  }

  private org(slug: string): SimOrg | undefined {
    return this.opts.orgs().find((o) => o.slug === slug);
  }

  private clientFrom(authorization: string | undefined, form: URLSearchParams): string {
    let id: string | null;
    let secret: string | null;
    const basic = /^Basic\s+(\S+)$/i.exec(authorization ?? "");
    if (basic?.[1] !== undefined) {
      const decoded = Buffer.from(basic[1], "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      if (colon < 0) return "Malformed Basic authorization";
      // RFC 6749 form-encodes both parts before base64; accept raw values too.
      id = formDecode(decoded.slice(0, colon), this.opts.clientId);
      secret = formDecode(decoded.slice(colon + 1), this.opts.clientSecret);
      const bodyId = form.get("client_id");
      if (bodyId !== null && bodyId !== id) return "client_id does not match the Basic credentials";
    } else {
      id = form.get("client_id");
      secret = form.get("client_secret");
    }
    if (id === null || secret === null) return "Client authentication is required";
    if (id !== this.opts.clientId || !safeEqual(secret, this.opts.clientSecret)) {
      return "Invalid client credentials";
    }
    return "ok";
  }

  private exchangeCode(form: URLSearchParams): TokenResult {
    const code = form.get("code");
    if (!code) return fail(400, "code is required");
    const entry = this.codes.get(code);
    if (!entry || entry.request.clientId !== this.opts.clientId) {
      return fail(400, "Invalid authorization code");
    }
    if (entry.used) {
      // A replayed code may be stolen: revoke what the first exchange issued.
      const grant = entry.grantId ? this.grants.get(entry.grantId) : undefined;
      if (grant) grant.revoked = true;
      return fail(400, "Authorization code has already been used");
    }
    if (entry.expiresAt <= this.opts.now()) return fail(400, "Authorization code has expired");
    if (form.get("redirect_uri") !== entry.request.redirectUri) {
      return fail(400, "redirect_uri does not match the authorization request");
    }
    const { challenge, method } = entry.request;
    if (challenge !== undefined) {
      const verifier = form.get("code_verifier");
      if (verifier === null) return fail(400, "code_verifier is required");
      if (!VERIFIER_PATTERN.test(verifier)) return fail(400, "code_verifier is malformed");
      const computed = method === "S256" ? sha256url(verifier) : verifier;
      if (!safeEqual(computed, challenge)) return fail(400, "Invalid code_verifier");
    }
    entry.used = true;
    const grant: Grant = {
      id: randomUUID(),
      orgSlug: entry.orgSlug,
      clientId: entry.request.clientId,
      revoked: false,
    };
    this.grants.set(grant.id, grant);
    entry.grantId = grant.id;
    return { status: 201, body: this.issue(grant), refreshed: false };
  }

  private refresh(form: URLSearchParams): TokenResult {
    const refreshToken = form.get("refresh_token");
    if (!refreshToken) return fail(400, "refresh_token is required");
    const entry = this.refreshTokens.get(refreshToken);
    const grant = entry ? this.grants.get(entry.grantId) : undefined;
    if (!entry || !grant || grant.clientId !== this.opts.clientId) {
      return fail(400, "Invalid refresh token");
    }
    if (grant.revoked || !this.org(grant.orgSlug)) return fail(401, "Unauthorized");
    if (entry.rotated) return fail(400, "Refresh token has already been used");
    entry.rotated = true;
    return { status: 201, body: this.issue(grant), refreshed: true };
  }

  private issue(grant: Grant): Record<string, unknown> {
    const access = `sbp_oauth_${randomBytes(20).toString("hex")}`;
    const refresh = `sim_refresh_${randomBytes(24).toString("base64url")}`;
    const ttl = this.opts.accessTokenTtlSeconds;
    this.accessTokens.set(access, { grantId: grant.id, expiresAt: this.opts.now() + ttl * 1000 });
    this.refreshTokens.set(refresh, { grantId: grant.id, rotated: false });
    return { access_token: access, refresh_token: refresh, expires_in: ttl, token_type: "Bearer" };
  }
}
