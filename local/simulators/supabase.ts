/**
 * Simulator of the Supabase OAuth endpoints and the slice of the Management API the project uses,
 * over plain HTTP on loopback. The project's real clients (`supabase-management-js` and the plain
 * fetch to `/v1/oauth/token`) run against it unchanged: point them at `sim.url`.
 *
 * Endpoints:
 * - `GET  /v1/oauth/authorize`    consent (auto-approved in sandbox mode, else an HTML page)
 * - `POST /v1/oauth/token`        authorization_code and refresh_token grants (201)
 * - `POST /v1/oauth/revoke`       revoke a grant by refresh token (204)
 * - `GET  /v1/organizations`, `/v1/organizations/{slug}`, `/v1/organizations/{slug}/members`,
 *   `/v1/organizations/{slug}/projects`, `/v1/projects`, `/v1/projects/{ref}`,
 *   `/v1/projects/{ref}/api-keys`, `/v1/projects/{ref}/api-keys/{id}`, `/v1/projects/{ref}/health`
 * - `POST /v1/projects/{ref}/api-keys`, `DELETE /v1/projects/{ref}/api-keys/{id}` (scope
 *   `secrets:write`; a grant without it gets 403, as the real API answers)
 * - `GET  /_sim/oauth/consent`    the Approve/Deny links of the consent page (simulator only)
 *
 * Management API calls need a Bearer access token; a token sees only the organization of its grant
 * and only the OAuth scopes the grant carries (every scope by default; see `setGrantScopes`).
 * Every Management API response carries `X-RateLimit-Limit/Remaining/Reset`, and a real fixed
 * one-minute window is enforced per grant scope (OAuth app + organization), as Supabase does.
 */
import { randomBytes, randomUUID } from "node:crypto";

import { json, startSimServer, type SimRequest, type SimResponse } from "./server.js";
import {
  HEALTH_SERVICES,
  ORG_PROJECTS_SORTS,
  REF_PATTERN,
  apiKeys,
  createdKeyResponse,
  health,
  isUnreachable,
  orgProjectItem,
  projectWithDatabase,
  sortProjects,
  validateOrg,
  type HealthService,
  type OrgProjectsSort,
  type SimApiKey,
  type SimOrg,
  type SimProject,
} from "./supabase-data.js";
import { OAuthState, type AuthorizeRequest } from "./supabase-oauth.js";

export type { SimApiKey, SimMember, SimOrg, SimProject } from "./supabase-data.js";

/** The OAuth scopes of the Management API the simulator knows (`x-oauth-scope` in the spec). */
export const SIM_SCOPES = ["secrets:read", "secrets:write"] as const;
export type SimScope = (typeof SIM_SCOPES)[number];
export { makeDemoOrg } from "./supabase-data.js";

export interface SupabaseSimOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  clientId: string;
  clientSecret: string;
  orgs?: SimOrg[];
  /** Sandbox: authorize approves at once (for `organization_slug` or the first org). */
  autoApprove?: boolean;
  /** Default 3600. */
  accessTokenTtlSeconds?: number;
  /** Delay added to every request. */
  latencyMs?: number;
  /** Management API requests per minute per grant scope; default 120 (the real limit). */
  rateLimitPerMinute?: number;
  /** Require PKCE (`code_challenge`) on authorize; default true. */
  requirePkce?: boolean;
  /** Accept only these redirect URIs on authorize (exact match); default: any absolute URL. */
  redirectUris?: string[];
  /** Clock in epoch ms, for tests that move time (code/token expiry, rate-limit window). */
  now?: () => number;
}

export interface SupabaseSimStats {
  /** Management API requests (everything under `/v1` except `/v1/oauth`). */
  managementCalls: number;
  /** `POST /v1/oauth/token` requests, successful or not. */
  tokenRequests: number;
  /** Successful refresh_token grants. */
  refreshes: number;
  /** Requests per `METHOD /path/{template}`. */
  byRoute: Record<string, number>;
  /** Authenticated Management API requests per granted organization slug. */
  byOrg: Record<string, number>;
  /** Requests refused by the real rate limiter (injected 429s are not counted here). */
  rateLimited: number;
}

export interface SupabaseFault {
  status: 429 | 401 | 500;
  /** Default 1. */
  count?: number;
  /**
   * Only requests whose path starts with this. Without it the fault hits any Management API call;
   * with it, OAuth paths (e.g. `/v1/oauth/token`) can be hit too.
   */
  pathPrefix?: string;
  /** `X-RateLimit-Reset` of an injected 429, in seconds; default 1. */
  resetSeconds?: number;
  /** Only requests of this method. */
  method?: string;
  /** Handle the request first, then answer with the fault (the effect happens, the answer is lost). */
  afterHandling?: boolean;
}

export interface SupabaseSimulator {
  url: string;
  port: number;
  close(): Promise<void>;
  /** Live and mutable: tests add orgs, projects and members. */
  orgs: SimOrg[];
  addOrg(org: SimOrg): void;
  stats(): SupabaseSimStats;
  resetStats(): void;
  /** Fault injection for the next N matching requests. Faults queue in order. */
  injectFault(f: SupabaseFault): void;
  /** Revoke every grant of an org (refresh then fails with 401, access tokens with 401). */
  revokeGrant(orgSlug: string): void;
  /** Expire all access tokens now (to test refresh). */
  expireAccessTokens(): void;
  /**
   * The OAuth scopes the grants of an org carry (an OAuth app registered without some
   * permission); default every scope of {@link SIM_SCOPES}.
   */
  setGrantScopes(orgSlug: string, scopes: readonly SimScope[]): void;
  /**
   * Authorize programmatically (what the consent screen does): returns the redirect URL with
   * `code` and `state` the browser would follow, or with `error=…` for a bad request. Throws when
   * the client or redirect URI is invalid (the real service shows an error page then).
   */
  authorize(params: URLSearchParams, orgSlug?: string): string;
}

type Handler = (
  req: SimRequest,
  params: Record<string, string>,
) => SimResponse | Promise<SimResponse>;

interface Route {
  method: string;
  template: string;
  pattern: RegExp;
  names: string[];
  kind: "oauth" | "management" | "sim";
  handle: Handler;
}

interface ActiveFault {
  status: 429 | 401 | 500;
  remaining: number;
  pathPrefix?: string;
  resetSeconds: number;
  method?: string;
  afterHandling?: boolean;
}

const WINDOW_MS = 60_000;

function route(method: string, template: string, kind: Route["kind"], handle: Handler): Route {
  const names: string[] = [];
  const source = template
    .split("/")
    .map((seg) => {
      const m = /^\{(\w+)\}$/.exec(seg);
      if (!m?.[1]) return seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      names.push(m[1]);
      return "([^/]+)";
    })
    .join("/");
  return { method, template, pattern: new RegExp(`^${source}/?$`), names, kind, handle };
}

function escapeHtml(s: string): string {
  return s
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

function emptyStats(): SupabaseSimStats {
  return {
    managementCalls: 0,
    tokenRequests: 0,
    refreshes: 0,
    byRoute: {},
    byOrg: {},
    rateLimited: 0,
  };
}

function header(req: SimRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export async function startSupabaseSimulator(opts: SupabaseSimOptions): Promise<SupabaseSimulator> {
  const now = opts.now ?? Date.now;
  const limit = opts.rateLimitPerMinute ?? 120;
  const orgs: SimOrg[] = [];
  for (const org of opts.orgs ?? []) {
    validateOrg(org);
    orgs.push(org);
  }
  const oauth = new OAuthState({
    clientId: opts.clientId,
    clientSecret: opts.clientSecret,
    accessTokenTtlSeconds: opts.accessTokenTtlSeconds ?? 3600,
    requirePkce: opts.requirePkce ?? true,
    ...(opts.redirectUris ? { redirectUris: opts.redirectUris } : {}),
    now,
    orgs: () => orgs,
  });
  let stats = emptyStats();
  const faults: ActiveFault[] = [];
  const windows = new Map<string, { start: number; count: number }>();

  const findOrg = (slug: string) => orgs.find((o) => o.slug === slug);
  const grantScopes = new Map<string, ReadonlySet<string>>();
  const hasScope = (org: SimOrg, scope: SimScope) => grantScopes.get(org.slug)?.has(scope) ?? true;
  const missingScope = (scope: SimScope) =>
    json(403, { message: `Your access token does not have the required scope: ${scope}` });

  /** Counts the request in its rate-limit window and returns the headers plus whether it is over. */
  function rateLimit(key: string): { headers: Record<string, string>; over: boolean } {
    const t = now();
    let w = windows.get(key);
    if (!w || t - w.start >= WINDOW_MS) {
      w = { start: t, count: 0 };
      windows.set(key, w);
    }
    w.count++;
    const reset = Math.max(1, Math.ceil((w.start + WINDOW_MS - t) / 1000));
    return {
      over: w.count > limit,
      headers: {
        "x-ratelimit-limit": String(limit),
        "x-ratelimit-remaining": String(Math.max(0, limit - w.count)),
        "x-ratelimit-reset": String(reset),
      },
    };
  }

  function takeFault(
    method: string,
    path: string,
    kind: Route["kind"] | "unmatched",
  ): ActiveFault | undefined {
    const i = faults.findIndex(
      (f) =>
        (f.method === undefined || f.method === method) &&
        (f.pathPrefix !== undefined
          ? path.startsWith(f.pathPrefix) && kind !== "sim"
          : kind === "management" || kind === "unmatched"),
    );
    const f = faults[i];
    if (!f) return undefined;
    if (--f.remaining <= 0) faults.splice(i, 1);
    return f;
  }

  function faultResponse(f: ActiveFault): SimResponse {
    switch (f.status) {
      case 429:
        return json(
          429,
          { message: "Too Many Requests" },
          {
            "x-ratelimit-limit": String(limit),
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": String(f.resetSeconds),
          },
        );
      case 401:
        return json(401, { message: "Unauthorized" });
      case 500:
        return json(500, { message: "Internal server error" });
    }
  }

  // ---- OAuth -------------------------------------------------------------------------------

  function consentPage(request: AuthorizeRequest): SimResponse {
    const id = oauth.holdForConsent(request);
    const choices = request.orgSlug ? orgs.filter((o) => o.slug === request.orgSlug) : orgs;
    const link = (decision: string, org?: string) => {
      const q = new URLSearchParams({ request_id: id, decision });
      if (org !== undefined) q.set("organization_slug", org);
      return `/_sim/oauth/consent?${q.toString()}`;
    };
    const items = choices
      .map(
        (o) =>
          `<li><a id="approve-${escapeHtml(o.slug)}" href="${escapeHtml(link("approve", o.slug))}">` +
          `Approve for ${escapeHtml(o.name)} (${escapeHtml(o.slug)})</a></li>`,
      )
      .join("\n");
    const html = `<!doctype html>
<html><head><meta charset="utf-8"><title>Authorize application</title></head>
<body>
<h1>Authorize application</h1>
<p>Application <code>${escapeHtml(request.clientId)}</code> wants access to an organization.</p>
<ul>
${items}
</ul>
<p><a id="deny" href="${escapeHtml(link("deny"))}">Deny</a></p>
</body></html>`;
    return { status: 200, headers: { "content-type": "text/html; charset=utf-8" }, body: html };
  }

  const authorizeRoute: Handler = (req) => {
    const check = oauth.checkAuthorize(req.query);
    if (check.kind === "fatal") return json(400, { message: check.message });
    if (check.kind === "redirect") return { status: 302, headers: { location: check.url } };
    if (orgs.length === 0) return json(400, { message: "No organization to authorize" });
    if (opts.autoApprove)
      return { status: 302, headers: { location: oauth.approve(check.request) } };
    return consentPage(check.request);
  };

  const consentRoute: Handler = (req) => {
    const request = oauth.takeConsent(req.query.get("request_id") ?? "");
    if (!request) return json(400, { message: "Unknown or expired consent request" });
    const decision = req.query.get("decision");
    if (decision === "deny") return { status: 302, headers: { location: oauth.deny(request) } };
    if (decision !== "approve") return json(400, { message: "decision must be approve or deny" });
    const slug = req.query.get("organization_slug") ?? request.orgSlug;
    if (slug !== undefined && !findOrg(slug))
      return json(400, { message: "Organization not found" });
    return { status: 302, headers: { location: oauth.approve(request, slug) } };
  };

  const tokenRoute: Handler = (req) => {
    stats.tokenRequests++;
    const r = oauth.token(header(req, "authorization"), header(req, "content-type"), req.text);
    if (r.refreshed) stats.refreshes++;
    return json(r.status, r.body);
  };

  const revokeRoute: Handler = (req) => {
    const r = oauth.revoke(req.text);
    return r.body ? json(r.status, r.body) : { status: r.status };
  };

  // ---- Management API ----------------------------------------------------------------------

  /** The org this request's token grants; `403`/`404` when `slug` is not it. */
  function orgInScope(granted: SimOrg, slug: string): SimResponse | undefined {
    if (slug === granted.slug) return undefined;
    return findOrg(slug)
      ? json(403, { message: "Forbidden resource" })
      : json(404, { message: "Organization not found" });
  }

  function projectInScope(granted: SimOrg, ref: string): SimProject | SimResponse {
    if (!REF_PATTERN.test(ref)) return json(400, { message: "Invalid project ref" });
    const p = granted.projects.find((x) => x.ref === ref);
    return p ?? json(404, { message: "Project not found" });
  }

  type MgmtHandler = (req: SimRequest, params: Record<string, string>, org: SimOrg) => SimResponse;

  const listOrganizations: MgmtHandler = (_req, _p, org) =>
    json(200, [{ id: org.slug, slug: org.slug, name: org.name }]);

  const getOrganization: MgmtHandler = (_req, p, org) =>
    orgInScope(org, p["slug"] ?? "") ??
    json(200, {
      id: org.slug,
      name: org.name,
      plan: org.plan ?? "free",
      opt_in_tags: [],
      allowed_release_channels: ["ga"],
    });

  const listMembers: MgmtHandler = (_req, p, org) =>
    orgInScope(org, p["slug"] ?? "") ??
    json(
      200,
      org.members.map((m) => ({
        user_id: m.user_id,
        user_name: m.user_name,
        ...(m.email !== undefined ? { email: m.email } : {}),
        role_name: m.role_name,
        mfa_enabled: m.mfa_enabled,
      })),
    );

  const listOrgProjects: MgmtHandler = (req, p, org) => {
    const denied = orgInScope(org, p["slug"] ?? "");
    if (denied) return denied;
    const q = req.query;
    const offset = Number(q.get("offset") ?? "0");
    const lim = Number(q.get("limit") ?? "100");
    if (!Number.isInteger(offset) || offset < 0) {
      return json(400, { message: "offset must not be less than 0" });
    }
    if (!Number.isInteger(lim) || lim < 1 || lim > 100) {
      return json(400, { message: "limit must be an integer between 1 and 100" });
    }
    const sort = (q.get("sort") ?? "name_asc") as OrgProjectsSort;
    if (!ORG_PROJECTS_SORTS.includes(sort)) {
      return json(400, { message: `sort must be one of: ${ORG_PROJECTS_SORTS.join(", ")}` });
    }
    const search = q.get("search")?.toLowerCase();
    const statuses = q
      .get("statuses")
      ?.split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    let list = org.projects.filter(
      (x) =>
        (!search || x.name.toLowerCase().includes(search) || x.ref.includes(search)) &&
        (!statuses || statuses.length === 0 || statuses.includes(x.status)),
    );
    list = sortProjects(list, sort);
    return json(200, {
      projects: list.slice(offset, offset + lim).map(orgProjectItem),
      pagination: { count: list.length, limit: lim, offset },
    });
  };

  const listProjects: MgmtHandler = (_req, _p, org) =>
    json(
      200,
      org.projects.map((x) => projectWithDatabase(org, x)),
    );

  const getProject: MgmtHandler = (_req, p, org) => {
    const x = projectInScope(org, p["ref"] ?? "");
    return "ref" in x ? json(200, projectWithDatabase(org, x)) : x;
  };

  const getApiKeys: MgmtHandler = (req, p, org) => {
    if (!hasScope(org, "secrets:read")) return missingScope("secrets:read");
    const x = projectInScope(org, p["ref"] ?? "");
    if (!("ref" in x)) return x;
    if (isUnreachable(x)) return json(400, { message: "Failed to fetch project service details" });
    const reveal = req.query.get("reveal");
    if (reveal !== null && reveal !== "true" && reveal !== "false") {
      return json(400, { message: "reveal must be a boolean value" });
    }
    return json(200, apiKeys(x, reveal === "true"));
  };

  const revealParam = (req: SimRequest): boolean | SimResponse => {
    const reveal = req.query.get("reveal");
    if (reveal !== null && reveal !== "true" && reveal !== "false") {
      return json(400, { message: "reveal must be a boolean value" });
    }
    return reveal === "true";
  };

  const KEY_NAME = /^[a-z_][a-z0-9_]+$/;
  const keyId = (p: Record<string, string>) => p["id"] ?? "";
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  const base62 = (n: number) => {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    return [...randomBytes(n)].map((b) => alphabet.charAt(b % alphabet.length)).join("");
  };

  /** `POST /v1/projects/{ref}/api-keys` with a `CreateApiKeyBody`: 201 `ApiKeyResponse`. */
  const createApiKey: MgmtHandler = (req, p, org) => {
    if (!hasScope(org, "secrets:write")) return missingScope("secrets:write");
    const x = projectInScope(org, p["ref"] ?? "");
    if (!("ref" in x)) return x;
    const reveal = revealParam(req);
    if (typeof reveal !== "boolean") return reveal;
    let body: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(req.text || "null");
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error();
      body = parsed as Record<string, unknown>;
    } catch {
      return json(400, { message: "Request body must be a JSON object" });
    }
    const type = body["type"];
    if (type !== "publishable" && type !== "secret") {
      return json(400, {
        message: "type must be one of the following values: publishable, secret",
      });
    }
    const name = body["name"];
    if (typeof name !== "string" || name.length < 4 || name.length > 64 || !KEY_NAME.test(name)) {
      return json(400, {
        message: "name must be 4 to 64 characters matching ^[a-z_][a-z0-9_]+$",
      });
    }
    const description = body["description"];
    if (description !== undefined && description !== null && typeof description !== "string") {
      return json(400, { message: "description must be a string" });
    }
    const template = body["secret_jwt_template"];
    if (template !== undefined && template !== null && typeof template !== "object") {
      return json(400, { message: "secret_jwt_template must be an object" });
    }
    if (isUnreachable(x)) return json(400, { message: "Failed to fetch project service details" });
    if (x.legacyOnly) {
      return json(400, {
        message: "Publishable and secret API keys are not enabled for this project",
      });
    }
    const at = new Date(now()).toISOString();
    const key: SimApiKey = {
      id: randomUUID(),
      type,
      name,
      description: typeof description === "string" ? description : null,
      apiKey: `sb_${type}_${base62(22)}_${base62(8)}`,
      secretJwtTemplate:
        type === "secret"
          ? ((template as Record<string, unknown> | null | undefined) ?? { role: "service_role" })
          : null,
      insertedAt: at,
      updatedAt: at,
    };
    (x.createdKeys ??= []).push(key);
    return json(201, createdKeyResponse(key, reveal));
  };

  const findCreated = (x: SimProject, id: string) =>
    (x.createdKeys ?? []).findIndex((k) => k.id === id);

  /** `GET /v1/projects/{ref}/api-keys/{id}` */
  const getApiKey: MgmtHandler = (req, p, org) => {
    if (!hasScope(org, "secrets:read")) return missingScope("secrets:read");
    const x = projectInScope(org, p["ref"] ?? "");
    if (!("ref" in x)) return x;
    const reveal = revealParam(req);
    if (typeof reveal !== "boolean") return reveal;
    if (!UUID.test(keyId(p))) return json(400, { message: "id must be a UUID" });
    const k = x.createdKeys?.[findCreated(x, keyId(p))];
    return k
      ? json(200, createdKeyResponse(k, reveal))
      : json(404, { message: "API key not found" });
  };

  /** `DELETE /v1/projects/{ref}/api-keys/{id}?reason=…`: 200 with the deleted `ApiKeyResponse`. */
  const deleteApiKey: MgmtHandler = (req, p, org) => {
    if (!hasScope(org, "secrets:write")) return missingScope("secrets:write");
    const x = projectInScope(org, p["ref"] ?? "");
    if (!("ref" in x)) return x;
    const reveal = revealParam(req);
    if (typeof reveal !== "boolean") return reveal;
    if (!UUID.test(keyId(p))) return json(400, { message: "id must be a UUID" });
    const at = findCreated(x, keyId(p));
    const k = x.createdKeys?.[at];
    if (!k) return json(404, { message: "API key not found" });
    x.createdKeys?.splice(at, 1);
    (x.deletedKeys ??= []).push({ ...k, reason: req.query.get("reason") });
    return json(200, createdKeyResponse(k, reveal));
  };

  const getHealth: MgmtHandler = (req, p, org) => {
    const x = projectInScope(org, p["ref"] ?? "");
    if (!("ref" in x)) return x;
    // Both `services=db&services=auth` and `services=db,auth` (what the SDK sends) are accepted.
    const services = req.query
      .getAll("services")
      .flatMap((s) => s.split(","))
      .map((s) => s.trim())
      .filter(Boolean);
    if (services.length === 0) return json(400, { message: "services should not be empty" });
    const bad = services.find((s) => !(HEALTH_SERVICES as readonly string[]).includes(s));
    if (bad !== undefined) {
      return json(400, {
        message: `each value in services must be one of the following values: ${HEALTH_SERVICES.join(", ")}`,
      });
    }
    return json(200, health(x, [...new Set(services)] as HealthService[]));
  };

  function management(handle: MgmtHandler): Handler {
    return (req, params) => {
      const auth = /^Bearer\s+(\S+)$/i.exec(header(req, "authorization") ?? "");
      const slug = auth?.[1] !== undefined ? oauth.orgForAccessToken(auth[1]) : undefined;
      const org = slug !== undefined ? findOrg(slug) : undefined;
      const limited = rateLimit(org ? `grant:${org.slug}` : "unauthenticated");
      const withLimits = (r: SimResponse): SimResponse => ({
        ...r,
        headers: { ...(r.headers ?? {}), ...limited.headers },
      });
      if (!org) return withLimits(json(401, { message: "Unauthorized" }));
      bump(stats.byOrg, org.slug);
      if (limited.over) {
        stats.rateLimited++;
        return withLimits(json(429, { message: "Too Many Requests" }));
      }
      return withLimits(handle(req, params, org));
    };
  }

  const routes: Route[] = [
    route("GET", "/v1/oauth/authorize", "oauth", authorizeRoute),
    route("POST", "/v1/oauth/token", "oauth", tokenRoute),
    route("POST", "/v1/oauth/revoke", "oauth", revokeRoute),
    route("GET", "/_sim/oauth/consent", "sim", consentRoute),
    route("GET", "/v1/organizations", "management", management(listOrganizations)),
    route("GET", "/v1/organizations/{slug}", "management", management(getOrganization)),
    route("GET", "/v1/organizations/{slug}/members", "management", management(listMembers)),
    route("GET", "/v1/organizations/{slug}/projects", "management", management(listOrgProjects)),
    route("GET", "/v1/projects", "management", management(listProjects)),
    route("GET", "/v1/projects/{ref}", "management", management(getProject)),
    route("GET", "/v1/projects/{ref}/api-keys", "management", management(getApiKeys)),
    route("POST", "/v1/projects/{ref}/api-keys", "management", management(createApiKey)),
    route("GET", "/v1/projects/{ref}/api-keys/{id}", "management", management(getApiKey)),
    route("DELETE", "/v1/projects/{ref}/api-keys/{id}", "management", management(deleteApiKey)),
    route("GET", "/v1/projects/{ref}/health", "management", management(getHealth)),
  ];

  async function handler(req: SimRequest): Promise<SimResponse> {
    if (opts.latencyMs) await new Promise((r) => setTimeout(r, opts.latencyMs));
    let matched: { route: Route; params: Record<string, string> } | undefined;
    for (const r of routes) {
      if (r.method !== req.method) continue;
      const m = r.pattern.exec(req.path);
      if (!m) continue;
      const params: Record<string, string> = {};
      r.names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1] ?? "")));
      matched = { route: r, params };
      break;
    }
    const kind =
      matched?.route.kind ??
      (req.path.startsWith("/v1/") && !req.path.startsWith("/v1/oauth/") ? "unmatched" : "sim");
    bump(
      stats.byRoute,
      matched ? `${matched.route.method} ${matched.route.template}` : "unmatched",
    );
    if (kind === "management" || kind === "unmatched") stats.managementCalls++;

    const fault = takeFault(req.method, req.path, kind);
    if (fault?.afterHandling && matched) {
      await matched.route.handle(req, matched.params);
      return faultResponse(fault);
    }
    if (fault) {
      if (matched?.route.template === "/v1/oauth/token") stats.tokenRequests++;
      return faultResponse(fault);
    }
    if (!matched) return json(404, { message: `Cannot ${req.method} ${req.path}` });
    return matched.route.handle(req, matched.params);
  }

  const server = await startSimServer(handler, opts.port ?? 0);

  return {
    url: server.url,
    port: server.port,
    close: () => server.close(),
    orgs,
    addOrg(org) {
      validateOrg(org);
      if (findOrg(org.slug)) throw new Error(`org "${org.slug}" already exists`);
      orgs.push(org);
    },
    stats: () => structuredClone(stats),
    resetStats() {
      stats = emptyStats();
    },
    injectFault(f) {
      const fault: ActiveFault = {
        status: f.status,
        remaining: f.count ?? 1,
        resetSeconds: f.resetSeconds ?? 1,
      };
      if (f.pathPrefix !== undefined) fault.pathPrefix = f.pathPrefix;
      if (f.method !== undefined) fault.method = f.method;
      if (f.afterHandling) fault.afterHandling = true;
      if (fault.remaining > 0) faults.push(fault);
    },
    revokeGrant(orgSlug) {
      oauth.revokeOrg(orgSlug);
    },
    expireAccessTokens() {
      oauth.expireAccessTokens();
    },
    setGrantScopes(orgSlug, scopes) {
      grantScopes.set(orgSlug, new Set(scopes));
    },
    authorize(params, orgSlug) {
      const check = oauth.checkAuthorize(params);
      if (check.kind === "fatal") throw new Error(check.message);
      if (check.kind === "redirect") return check.url;
      return oauth.approve(check.request, orgSlug);
    },
  };
}
