/**
 * The Supabase Management API on behalf of one connected organization, through
 * `supabase-management-js` pointed at `SUPABASE_API_URL`.
 *
 * Every call goes through one wrapper that:
 * - uses the org's current access token and, on one 401, refreshes it (see ./tokens.ts) and
 *   retries once;
 * - on 429 waits for `X-RateLimit-Reset` when that is short and the org's budget of waits allows
 *   it, else answers 503 with `Retry-After`; later calls for the org wait out the same reset;
 * - maps an unreachable Supabase or a 5xx to 502 `upstream_error` (worth retrying), and any
 *   other 4xx to a permanent error (`AppError.permanent`: retrying the request cannot help).
 * The organization, its members and its projects are cached briefly (single-flight), so a page
 * load costs at most one Management API call. API keys are never cached and never logged.
 */
import type { SupabaseManagementAPI } from "supabase-management-js";
import { z } from "zod";

import { AppError, notFound, statusOf } from "../errors.js";
import type { Services } from "../services.js";
import { TtlCache } from "./cache.js";
import { resetSeconds, upstreamRateLimited } from "./rate-limit.js";
import { accessToken, forgetTokens, refreshTokens } from "./tokens.js";
import { logProcessEvent } from "../telemetry.js";

/** How reading a project's API keys maps Supabase's refusals. */
const API_KEYS_ERRORS = {
  404: () => {
    throw notFound("This project does not belong to the connected organization.");
  },
  400: () => {
    throw projectUnavailable();
  },
};

export interface SupabaseOrganization {
  slug: string;
  name: string;
}

export interface SupabaseMember {
  userId: string;
  name: string;
  role: string;
  /** Not every member has one (the API marks it optional). */
  email: string | null;
}

export interface SupabaseProject {
  ref: string;
  name: string;
  region: string;
  /** Supabase's project status, e.g. `ACTIVE_HEALTHY`, `INACTIVE` (paused), `COMING_UP`. */
  status: string;
}

/** Project statuses of a project that is up or on its way up; any other cannot be monitored. */
const UP_STATUSES = new Set([
  "ACTIVE_HEALTHY",
  "ACTIVE_UNHEALTHY",
  "COMING_UP",
  "RESTORING",
  "UPGRADING",
  "RESTARTING",
  "RESIZING",
]);

/** False for a paused (`INACTIVE`), pausing, removed or otherwise stopped project. */
export const isProjectUp = (status: string): boolean => UP_STATUSES.has(status);

/** A project API key as listed; `apiKey` only when revealed (never a masked value). */
export interface ProjectApiKey {
  id: string;
  name: string;
  type: string | null;
  description: string | null;
  insertedAt: Date | undefined;
  apiKey: string | undefined;
}

/** What creating a secret key gave: the key, or why the grant cannot make one. */
export type CreatedKey =
  | { kind: "created"; id: string; apiKey: string }
  /** The grant lacks the `secrets:write` scope (403). */
  | { kind: "forbidden" }
  /** The project refuses new-style keys (400). */
  | { kind: "unsupported" };

export interface SupabaseClient {
  readonly org: string;
  getOrganization(): Promise<SupabaseOrganization>;
  listMembers(): Promise<SupabaseMember[]>;
  listProjects(): Promise<SupabaseProject[]>;
  /** `undefined` when the project does not exist or is not visible to this org's grant. */
  getProject(ref: string): Promise<SupabaseProject | undefined>;
  /** The project's service-role key (the `secret` key when there is one, else the legacy JWT). */
  getServiceKey(ref: string): Promise<string>;
  projectBelongsToOrg(ref: string): Promise<boolean>;
  /** The project's API keys (`GET /v1/projects/{ref}/api-keys`). Never cached. */
  listApiKeys(ref: string, opts: { reveal: boolean }): Promise<ProjectApiKey[]>;
  /** Mints a `secret` key (`POST /v1/projects/{ref}/api-keys?reveal=true`). */
  createSecretKey(ref: string, name: string, description: string): Promise<CreatedKey>;
  /** Deletes a key (`DELETE /v1/projects/{ref}/api-keys/{id}?reason=…`); a missing one is gone. */
  deleteApiKey(ref: string, id: string, reason: string): Promise<"deleted" | "gone" | "forbidden">;
}

const ORG_TTL_MS = 5 * 60_000;
const MEMBERS_TTL_MS = 60_000;
const PROJECTS_TTL_MS = 30_000;
const CALL_TIMEOUT_MS = 10_000;
const MAX_ATTEMPTS = 4;
/** Longest single wait for a rate-limit reset; longer resets fail fast with Retry-After. */
const RATE_WAIT_MAX_MS = 5_000;
/** How many 429s per org and minute are waited out before failing fast. */
const RATE_BUDGET_PER_MINUTE = 5;
const PAGE_SIZE = 100;
const MAX_PAGES = 50;
const REF_PATTERN = /^[a-z]{20}$/;

type Api = SupabaseManagementAPI;
type Result = { data: unknown };

interface RateState {
  windowStart: number;
  waits: number;
  blockedUntil: number;
}

const sdk = (services: Services) =>
  services.memo("supabase-management-js", () => import("supabase-management-js"));
const cacheOf = (services: Services) =>
  services.memo("supabase-cache", () => new TtlCache<unknown>(services.clock));
const rateOf = (services: Services, org: string): RateState => {
  const all = services.memo("supabase-rate", () => new Map<string, RateState>());
  let s = all.get(org);
  if (!s) {
    s = { windowStart: 0, waits: 0, blockedUntil: 0 };
    all.set(org, s);
  }
  return s;
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const upstreamError = (what: string, cause?: unknown) =>
  new AppError(
    502,
    "upstream_error",
    `Supabase did not answer ${what}; try again shortly.`,
    undefined,
    {
      cause,
    },
  );

/** Waits out a reset the org is known to be in, unless it is too long. */
async function respectReset(services: Services, org: string): Promise<void> {
  const blockedFor = rateOf(services, org).blockedUntil - Date.now();
  if (blockedFor <= 0) return;
  if (blockedFor > RATE_WAIT_MAX_MS) throw upstreamRateLimited(blockedFor / 1000);
  await sleep(blockedFor);
}

/** Records a 429; waits for its reset when short and within the org's budget, else throws. */
async function backOff(services: Services, org: string, seconds: number): Promise<void> {
  const s = rateOf(services, org);
  const now = Date.now();
  const ms = Math.ceil(seconds * 1000);
  s.blockedUntil = Math.max(s.blockedUntil, now + ms);
  if (now - s.windowStart >= 60_000) {
    s.windowStart = now;
    s.waits = 0;
  }
  if (ms > RATE_WAIT_MAX_MS || s.waits >= RATE_BUDGET_PER_MINUTE)
    throw upstreamRateLimited(seconds);
  s.waits++;
  await sleep(ms);
}

/** Statuses a caller handles itself (e.g. 404), mapped to a result or a throw. */
type Expected = Partial<Record<number, () => unknown>>;

/** One Management API call for `org` with the retry rules above. */
async function call(
  services: Services,
  org: string,
  what: string,
  fn: (api: Api, init: RequestInit) => Promise<Result>,
  expected: Expected = {},
): Promise<unknown> {
  try {
    return await callWithRetries(services, org, what, fn, expected);
  } catch (err) {
    if (err instanceof AppError && err.code === "installation_revoked")
      forgetOrganization(services, org);
    throw err;
  }
}

async function callWithRetries(
  services: Services,
  org: string,
  what: string,
  fn: (api: Api, init: RequestInit) => Promise<Result>,
  expected: Expected,
): Promise<unknown> {
  const { SupabaseManagementAPI } = await sdk(services);
  let token = await accessToken(services, org);
  let refreshed = false;
  for (let attempt = 1; ; attempt++) {
    await respectReset(services, org);
    const api = new SupabaseManagementAPI({
      accessToken: token.accessToken,
      baseUrl: services.config.SUPABASE_API_URL,
    });
    try {
      const res = await fn(api, { signal: AbortSignal.timeout(CALL_TIMEOUT_MS) });
      return res.data;
    } catch (err) {
      const status = statusOf(err);
      if (status === undefined || status >= 500) throw upstreamError(what, err);
      const handle = expected[status];
      if (handle) return handle();
      if (status === 401 && !refreshed) {
        refreshed = true;
        token = await refreshTokens(services, org, token.version);
        continue;
      }
      if (status === 429) {
        const seconds = resetSeconds((err as { headers?: Headers }).headers);
        logProcessEvent("supabase rate limited", {
          event: "supabase.rate_limited",
          org,
          resetSeconds: seconds,
          attempt,
        });
        if (attempt >= MAX_ATTEMPTS) throw upstreamRateLimited(seconds);
        await backOff(services, org, seconds);
        continue;
      }
      // Any other 4xx (a second 401 aside) is Supabase's answer to this request: retrying
      // the same request cannot change it.
      throw new AppError(
        502,
        "upstream_error",
        `Supabase refused ${what} (HTTP ${status}).`,
        undefined,
        { cause: err, permanent: status !== 401 },
      );
    }
  }
}

/** Supabase answers 400 for a project whose services it cannot reach (paused, removed). */
const projectUnavailable = () =>
  new AppError(
    409,
    "project_unavailable",
    "Supabase cannot reach this project's services (is it paused? restore it in Supabase, then provision again).",
    undefined,
    { permanent: true },
  );

function parse<S extends z.ZodType>(schema: S, data: unknown, what: string): z.output<S> {
  const result = schema.safeParse(data);
  if (!result.success) {
    throw new AppError(
      502,
      "upstream_error",
      `Supabase answered ${what} with an unexpected shape.`,
    );
  }
  return result.data;
}

const organizationsSchema = z.array(z.object({ slug: z.string(), name: z.string() }));
const organizationSchema = z.object({ name: z.string() });
const membersSchema = z.array(
  z.object({
    user_id: z.string(),
    user_name: z.string(),
    email: z.string().nullish(),
    role_name: z.string(),
  }),
);
const projectSchema = z.object({
  ref: z.string(),
  name: z.string(),
  region: z.string(),
  status: z.string(),
  organization_slug: z.string().nullish(),
});
const projectsPageSchema = z.object({
  projects: z.array(projectSchema),
  pagination: z.object({ count: z.number() }).partial().optional(),
});
const apiKeysSchema = z.array(
  z.object({
    name: z.string(),
    api_key: z.string().nullish(),
    type: z.string().nullish(),
    secret_jwt_template: z.object({ role: z.unknown() }).partial().nullish(),
  }),
);

const apiKeyItemSchema = z.object({
  id: z.string().nullish(),
  name: z.string(),
  api_key: z.string().nullish(),
  type: z.string().nullish(),
  description: z.string().nullish(),
  inserted_at: z.string().nullish(),
});

/** A usable key value: present and not masked. */
const revealed = (k: string | null | undefined): k is string => !!k && !k.includes("·");

const toApiKey = (k: z.output<typeof apiKeyItemSchema>): ProjectApiKey => {
  const at = k.inserted_at ? new Date(k.inserted_at) : undefined;
  return {
    id: k.id ?? "",
    name: k.name,
    type: k.type ?? null,
    description: k.description ?? null,
    insertedAt: at && !Number.isNaN(at.getTime()) ? at : undefined,
    apiKey: revealed(k.api_key) ? k.api_key : undefined,
  };
};

const toProject = (p: z.output<typeof projectSchema>): SupabaseProject => ({
  ref: p.ref,
  name: p.name,
  region: p.region,
  status: p.status,
});

function assertRef(ref: string): void {
  if (!REF_PATTERN.test(ref)) {
    throw new AppError(400, "invalid_ref", "A project ref is 20 lower-case letters.");
  }
}

/** Drops what this process caches for an org (after a revocation or a reconnect). */
export function forgetOrganization(services: Services, org: string): void {
  cacheOf(services).dropPrefix(`${org}\u0000`);
  forgetTokens(services, org);
}

export function supabaseFor(services: Services, org: string): SupabaseClient {
  const cache = cacheOf(services);
  const key = (what: string) => `${org}\u0000${what}`;
  const cached = async <T>(what: string, ttlMs: number, load: () => Promise<T>): Promise<T> =>
    (await cache.get(key(what), ttlMs, load)) as T;

  const getProject = async (ref: string): Promise<SupabaseProject | undefined> => {
    assertRef(ref);
    const gone = () => undefined;
    const data = await call(
      services,
      org,
      "the project lookup",
      (api, init) => api.getProject(ref, init),
      {
        404: gone,
        403: gone,
      },
    );
    if (data === undefined) return undefined;
    const p = parse(projectSchema, data, "the project lookup");
    if (p.organization_slug && p.organization_slug !== org) return undefined;
    return toProject(p);
  };

  const listProjects = () =>
    cached("projects", PROJECTS_TTL_MS, async () => {
      const out: SupabaseProject[] = [];
      for (let page = 0; page < MAX_PAGES; page++) {
        const offset = page * PAGE_SIZE;
        const data = await call(services, org, "the project list", (api, init) =>
          api.getAllProjectsForOrganization(org, { offset, limit: PAGE_SIZE }, init),
        );
        const { projects, pagination } = parse(projectsPageSchema, data, "the project list");
        out.push(...projects.map(toProject));
        const total = pagination?.count;
        if (projects.length < PAGE_SIZE || (total !== undefined && out.length >= total)) break;
      }
      return out;
    });

  return {
    org,
    getOrganization: () =>
      cached("org", ORG_TTL_MS, async () => {
        const data = await call(services, org, "the organization lookup", (api, init) =>
          api.getAnOrganization(org, init),
        );
        return { slug: org, name: parse(organizationSchema, data, "the organization lookup").name };
      }),

    listMembers: () =>
      cached("members", MEMBERS_TTL_MS, async () => {
        const data = await call(services, org, "the member list", (api, init) =>
          api.listOrganizationMembers(org, init),
        );
        return parse(membersSchema, data, "the member list").map((m) => ({
          userId: m.user_id,
          name: m.user_name,
          role: m.role_name,
          email: m.email ?? null,
        }));
      }),

    listProjects,
    getProject,

    async getServiceKey(ref) {
      assertRef(ref);
      const data = await call(
        services,
        org,
        "the project's API keys",
        (api, init) => api.getProjectApiKeys(ref, { reveal: true }, init),
        { ...API_KEYS_ERRORS, 403: API_KEYS_ERRORS[404] },
      );
      const keys = parse(apiKeysSchema, data, "the project's API keys");
      const usable = (k: string | null | undefined): k is string => !!k && !k.includes("·");
      const secret = keys.find(
        (k) =>
          k.type === "secret" &&
          k.secret_jwt_template?.role === "service_role" &&
          usable(k.api_key),
      );
      const legacy = keys.find(
        (k) => k.name === "service_role" && (k.type ?? "legacy") === "legacy",
      );
      const key = secret?.api_key ?? legacy?.api_key;
      if (!usable(key)) {
        throw new AppError(
          502,
          "upstream_error",
          "Supabase returned no service-role key for this project.",
        );
      }
      return key;
    },

    async listApiKeys(ref, { reveal }) {
      assertRef(ref);
      const data = await call(
        services,
        org,
        "the project's API keys",
        (api, init) => api.getProjectApiKeys(ref, { reveal }, init),
        API_KEYS_ERRORS,
      );
      return parse(z.array(apiKeyItemSchema), data, "the project's API keys").map(toApiKey);
    },

    async createSecretKey(ref, name, description) {
      assertRef(ref);
      const data = await call(
        services,
        org,
        "the creation of an API key",
        (api, init) =>
          api.createProjectApiKey(
            ref,
            { type: "secret", name, description },
            { reveal: true },
            init,
          ),
        { 403: () => "forbidden", 400: () => "unsupported" },
      );
      if (data === "forbidden") return { kind: "forbidden" };
      if (data === "unsupported") return { kind: "unsupported" };
      const k = toApiKey(parse(apiKeyItemSchema, data, "the creation of an API key"));
      if (!k.id || !k.apiKey) {
        throw new AppError(502, "upstream_error", "Supabase created an API key without its value.");
      }
      return { kind: "created", id: k.id, apiKey: k.apiKey };
    },

    async deleteApiKey(ref, id, reason) {
      assertRef(ref);
      const data = await call(
        services,
        org,
        "the deletion of an API key",
        (api, init) => api.deleteProjectApiKey(ref, id, { reason }, init),
        { 404: () => "gone", 403: () => "forbidden" },
      );
      return data === "gone" || data === "forbidden" ? data : "deleted";
    },

    async projectBelongsToOrg(ref) {
      if (!REF_PATTERN.test(ref)) return false;
      const known = cache.peek(key("projects")) as SupabaseProject[] | undefined;
      if (known?.some((p) => p.ref === ref)) return true;
      return (await getProject(ref)) !== undefined;
    },
  };
}

/**
 * The organizations a freshly issued access token grants (right after the OAuth exchange, before
 * an installation exists). One Management API call, no retries.
 */
export async function grantedOrganizations(
  services: Services,
  token: string,
): Promise<SupabaseOrganization[]> {
  const { SupabaseManagementAPI } = await sdk(services);
  const api = new SupabaseManagementAPI({
    accessToken: token,
    baseUrl: services.config.SUPABASE_API_URL,
  });
  let data: unknown;
  try {
    data = (await api.listAllOrganizations({ signal: AbortSignal.timeout(CALL_TIMEOUT_MS) })).data;
  } catch (err) {
    throw upstreamError("the organization list", err);
  }
  return parse(organizationsSchema, data, "the organization list").map((o) => ({
    slug: o.slug,
    name: o.name,
  }));
}
