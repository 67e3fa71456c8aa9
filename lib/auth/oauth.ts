/**
 * Connecting a Supabase organization: OAuth 2 authorization code with PKCE (S256) and `state`.
 *
 * - `beginLogin` stores the state (by its SHA-256) with the encrypted PKCE verifier and the
 *   `returnTo` path in the `oauthStates` table for 10 minutes, binds it to this browser with a
 *   short-lived signed cookie (no login CSRF), and redirects to Supabase's authorize endpoint.
 * - `completeLogin` takes the state once (an etag-conditional delete: of two concurrent callbacks
 *   only one wins), exchanges the code, reads the granted organization, records the installation
 *   and starts a session. Every failure redirects to the SPA with `?connectError=<code>` and
 *   stores nothing.
 */
import { createHash, hkdfSync, randomBytes } from "node:crypto";

import type { Cookie, HttpRequest } from "@azure/functions";
import { jwtVerify, SignJWT } from "jose";

import { AppError, statusOf } from "../errors.js";
import { upsertInstallation } from "../installations.js";
import { decryptSecret, encryptSecret } from "../secrets.js";
import type { Services } from "../services.js";
import { deleteExpiredRows, getEntity } from "../storage/tables.js";
import { forgetOrganization, grantedOrganizations } from "../supabase/client.js";
import { requestTokens, TokenGrantRefused } from "../supabase/token-endpoint.js";
import { appCookie, endSession, readCookie, readSession, startSession } from "./session.js";

export const OAUTH_COOKIE = "__Host-supafana_oauth";
const STATE_TTL_MS = 10 * 60_000;
/** The binding cookie outlives the state a little, so a late callback reads "expired". */
const COOKIE_TTL_MS = STATE_TTL_MS + 5 * 60_000;
const COOKIE_AUDIENCE = "supafana-oauth-state";
const MAX_RETURN_TO = 1024;

function hasControl(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return true;
  }
  return false;
}

/** What the SPA is told, as `?connectError=<code>`, when connecting fails. */
export type ConnectErrorCode =
  | "invalid_return_to"
  | "access_denied"
  | "authorization_failed"
  | "invalid_state"
  | "state_expired"
  | "exchange_failed"
  | "no_organization"
  | "upstream_error";

export interface LoginRedirect {
  location: string;
  cookies: Cookie[];
}

interface OAuthStateEntity {
  verifierSecret: string;
  returnTo: string;
  createdAt: Date;
  expiresAt: Date;
}

const b64url = (bytes: Buffer) => bytes.toString("base64url");
const sha256 = (value: string) => createHash("sha256").update(value).digest();
const stateKey = (state: string) => sha256(state).toString("hex");
const verifierContext = (key: string) => `oauthState:${key}`;

function cookieKey(services: Services): Uint8Array {
  return services.memo(
    "oauth-cookie-key",
    () =>
      new Uint8Array(
        hkdfSync("sha256", services.config.SESSION_SECRET, "", "supafana/oauth-state-cookie", 32),
      ),
  );
}

function bindingCookie(value: string, maxAgeSeconds: number): Cookie {
  return appCookie(OAUTH_COOKIE, value, maxAgeSeconds);
}

const clearedBindingCookie = () => bindingCookie("", 0);

export const redirectUri = (services: Services) =>
  `${services.config.PUBLIC_BASE_URL}/api/auth/callback`;

const connectErrorUrl = (services: Services, code: ConnectErrorCode) =>
  `${services.config.PUBLIC_BASE_URL}/?connectError=${code}`;

/**
 * `returnTo` as a same-origin path (path, query and fragment), or undefined when it could lead
 * anywhere else: absolute and scheme-relative URLs, backslashes, control characters, whitespace.
 * Missing means "/".
 */
export function safeReturnTo(publicBaseUrl: string, raw: string | undefined): string | undefined {
  if (raw === undefined || raw === "") return "/";
  if (raw.length > MAX_RETURN_TO || !raw.startsWith("/") || raw.startsWith("//")) return undefined;
  if (/[\\\s]/.test(raw) || hasControl(raw)) return undefined;
  const origin = new URL(publicBaseUrl).origin;
  let url: URL;
  try {
    url = new URL(raw, origin);
  } catch {
    return undefined;
  }
  const path = `${url.pathname}${url.search}${url.hash}`;
  if (url.origin !== origin || path.startsWith("//")) return undefined;
  return path;
}

/** Starts a connection: the redirect to Supabase's consent screen, and the binding cookie. */
export async function beginLogin(
  services: Services,
  rawReturnTo: string | undefined,
): Promise<LoginRedirect> {
  const { config } = services;
  const returnTo = safeReturnTo(config.PUBLIC_BASE_URL, rawReturnTo);
  if (returnTo === undefined)
    return { location: connectErrorUrl(services, "invalid_return_to"), cookies: [] };

  const state = b64url(randomBytes(32));
  const verifier = b64url(randomBytes(64));
  const key = stateKey(state);
  const now = services.clock.now();
  const entity: OAuthStateEntity & { partitionKey: string; rowKey: string } = {
    partitionKey: key,
    rowKey: "",
    verifierSecret: await encryptSecret(config.SECRET_KEYS, verifier, verifierContext(key)),
    returnTo,
    createdAt: now,
    expiresAt: new Date(now.getTime() + STATE_TTL_MS),
  };
  await services.tables.client("oauthStates").createEntity(entity);

  const nowSeconds = Math.floor(now.getTime() / 1000);
  const binding = await new SignJWT({})
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(key)
    .setAudience(COOKIE_AUDIENCE)
    .setIssuedAt(nowSeconds)
    .setExpirationTime(nowSeconds + COOKIE_TTL_MS / 1000)
    .sign(cookieKey(services));

  const authorize = new URL(`${config.SUPABASE_API_URL}/v1/oauth/authorize`);
  authorize.search = new URLSearchParams({
    client_id: config.SUPABASE_CLIENT_ID,
    redirect_uri: redirectUri(services),
    response_type: "code",
    state,
    code_challenge: b64url(sha256(verifier)),
    code_challenge_method: "S256",
  }).toString();
  return {
    location: authorize.toString(),
    cookies: [bindingCookie(binding, COOKIE_TTL_MS / 1000)],
  };
}

/** The state key this browser started a login for, from its binding cookie. */
async function boundStateKey(services: Services, req: HttpRequest): Promise<string | undefined> {
  const token = readCookie(req, OAUTH_COOKIE);
  if (!token) return undefined;
  try {
    const { payload } = await jwtVerify(token, cookieKey(services), {
      algorithms: ["HS256"],
      audience: COOKIE_AUDIENCE,
      currentDate: services.clock.now(),
    });
    return typeof payload.sub === "string" ? payload.sub : undefined;
  } catch {
    return undefined;
  }
}

/** Takes the state row once; undefined when it is unknown or another callback took it first. */
async function takeState(services: Services, key: string): Promise<OAuthStateEntity | undefined> {
  const table = services.tables.client("oauthStates");
  const row = await getEntity<OAuthStateEntity>(table, key, "");
  if (!row) return undefined;
  try {
    await table.deleteEntity(key, "", { etag: row.etag });
  } catch (err) {
    const status = statusOf(err);
    if (status === 404 || status === 412) return undefined;
    throw err;
  }
  return row;
}

export interface CallbackQuery {
  code?: string | undefined;
  state?: string | undefined;
  error?: string | undefined;
}

/** Finishes a connection (the OAuth callback). */
export async function completeLogin(
  services: Services,
  req: HttpRequest,
  query: CallbackQuery,
): Promise<LoginRedirect> {
  const fail = (code: ConnectErrorCode): LoginRedirect => ({
    location: connectErrorUrl(services, code),
    cookies: [clearedBindingCookie()],
  });

  if (!query.state)
    return fail(query.error === "access_denied" ? "access_denied" : "invalid_state");
  const key = stateKey(query.state);
  // Only the browser that started this login may finish it; a foreign state is left untouched.
  if ((await boundStateKey(services, req)) !== key) return fail("invalid_state");
  const state = await takeState(services, key);
  if (!state) return fail("invalid_state");
  if (state.expiresAt.getTime() <= services.clock.now().getTime()) return fail("state_expired");
  if (query.error !== undefined)
    return fail(query.error === "access_denied" ? "access_denied" : "authorization_failed");
  if (!query.code) return fail("authorization_failed");

  const verifier = await decryptSecret(
    services.config.SECRET_KEYS,
    state.verifierSecret,
    verifierContext(key),
  );
  let tokens;
  let orgs;
  try {
    tokens = await requestTokens(services, {
      grant_type: "authorization_code",
      code: query.code,
      code_verifier: verifier,
      redirect_uri: redirectUri(services),
    });
    orgs = await grantedOrganizations(services, tokens.accessToken);
  } catch (err) {
    if (err instanceof TokenGrantRefused) return fail("exchange_failed");
    if (err instanceof AppError && err.status >= 500) return fail("upstream_error");
    throw err;
  }
  const [org] = orgs;
  if (!org || orgs.length !== 1) return fail("no_organization");

  await upsertInstallation(services, { org: org.slug, name: org.name, tokens });
  forgetOrganization(services, org.slug);

  // A new session for the new connection; this browser's previous one ends (no fixation).
  const previous = await readSession(services, req);
  if (previous) await endSession(services, previous.id);
  const { cookie } = await startSession(services, org.slug);
  return {
    location: `${new URL(services.config.PUBLIC_BASE_URL).origin}${state.returnTo}`,
    cookies: [clearedBindingCookie(), cookie],
  };
}

/** Deletes OAuth states that expired before `cutoff` (at most `max`); returns how many. */
export const purgeExpiredStates = (services: Services, cutoff: Date, max: number) =>
  deleteExpiredRows(services.tables.client("oauthStates"), cutoff, max);
