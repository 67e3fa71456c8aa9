/**
 * Data model of the Supabase simulator and the Management API response shapes built from it.
 *
 * Shapes follow the Management API OpenAPI spec (`V1ProjectWithDatabaseResponse`,
 * `OrganizationProjectsResponse`, `ApiKeyResponse`, `V1ServiceHealthResponse`, ...). Keys are
 * derived deterministically from the project ref, so the same ref always yields the same keys.
 */
import { createHash, createHmac } from "node:crypto";

export interface SimMember {
  user_id: string;
  user_name: string;
  email?: string;
  role_name: string;
  mfa_enabled: boolean;
}

export interface SimProject {
  /** `^[a-z]{20}$` */
  ref: string;
  name: string;
  region: string;
  /** A `V1ProjectWithDatabaseResponse.status`, e.g. `ACTIVE_HEALTHY`, `INACTIVE` (paused). */
  status: string;
  /**
   * The key to hand out for the service role. A value starting with `sb_secret_` becomes the
   * `secret` key; anything else becomes the legacy `service_role` JWT. The other is derived.
   */
  serviceKey?: string;
  /** ISO timestamp; defaults to a fixed date. */
  createdAt?: string;
  /** Only the legacy `anon`/`service_role` keys (no publishable or secret keys yet). */
  legacyOnly?: boolean;
  /** Keys created through `POST /v1/projects/{ref}/api-keys` (live: deletes remove them). */
  createdKeys?: SimApiKey[];
  /** Keys deleted through `DELETE /v1/projects/{ref}/api-keys/{id}`, with the reason given. */
  deletedKeys?: Array<SimApiKey & { reason: string | null }>;
}

/** A key made through the Management API. */
export interface SimApiKey {
  id: string;
  type: "publishable" | "secret";
  name: string;
  description: string | null;
  apiKey: string;
  secretJwtTemplate: Record<string, unknown> | null;
  insertedAt: string;
  updatedAt: string;
}

export interface SimOrg {
  slug: string;
  name: string;
  /** Defaults to `free`. */
  plan?: "free" | "pro" | "team" | "enterprise" | "platform";
  members: SimMember[];
  projects: SimProject[];
}

export const REF_PATTERN = /^[a-z]{20}$/;
export const SLUG_PATTERN = /^[\w-]+$/;
export const HEALTH_SERVICES = [
  "auth",
  "db",
  "db_postgres_user",
  "pooler",
  "realtime",
  "rest",
  "storage",
  "pg_bouncer",
] as const;
export type HealthService = (typeof HEALTH_SERVICES)[number];

const DEFAULT_CREATED_AT = "2025-01-01T00:00:00.000Z";

/** Project statuses for which the real API cannot reach the project's services (paused etc.). */
const UNREACHABLE = new Set(["INACTIVE", "PAUSING", "PAUSE_FAILED", "REMOVED", "GOING_DOWN"]);
const STARTING = new Set(["COMING_UP", "RESTORING", "UPGRADING", "RESTARTING", "RESIZING"]);
const DB_STATUSES = new Set([
  "ACTIVE_HEALTHY",
  "ACTIVE_UNHEALTHY",
  "COMING_UP",
  "GOING_DOWN",
  "INIT_FAILED",
  "REMOVED",
  "RESTORING",
  "UNKNOWN",
  "RESTARTING",
  "RESIZING",
]);

export function validateOrg(org: SimOrg): void {
  if (!SLUG_PATTERN.test(org.slug)) throw new Error(`invalid org slug "${org.slug}"`);
  for (const p of org.projects) {
    if (!REF_PATTERN.test(p.ref))
      throw new Error(`invalid project ref "${p.ref}" (need ^[a-z]{20}$)`);
  }
}

/** A demo org "demo-org": five projects (one paused, one starting) and three members. */
export function makeDemoOrg(): SimOrg {
  return {
    slug: "demo-org",
    name: "Demo Org",
    plan: "pro",
    members: [
      {
        user_id: "5b0f2c1e-6d1a-4f0e-9a4b-1c2d3e4f5a60",
        user_name: "ada",
        email: "ada@demo.example",
        role_name: "Owner",
        mfa_enabled: true,
      },
      {
        user_id: "7c1e3d2f-8e2b-4a1f-8b5c-2d3e4f5a6b71",
        user_name: "grace",
        email: "grace@demo.example",
        role_name: "Developer",
        mfa_enabled: false,
      },
      {
        user_id: "9d2f4e3a-0f3c-4b2a-9c6d-3e4f5a6b7c82",
        user_name: "linus",
        role_name: "Read-only",
        mfa_enabled: false,
      },
    ],
    projects: [
      {
        ref: "qzdemoprodapiabcdefg",
        name: "Production API",
        region: "us-east-1",
        status: "ACTIVE_HEALTHY",
        createdAt: "2024-03-04T09:15:00.000Z",
      },
      {
        ref: "qzdemostagingwebhijk",
        name: "Staging Web",
        region: "eu-central-1",
        status: "ACTIVE_HEALTHY",
        createdAt: "2024-06-11T14:30:00.000Z",
      },
      {
        ref: "qzdemoanalyticslmnop",
        name: "Analytics",
        region: "ap-southeast-1",
        status: "ACTIVE_HEALTHY",
        createdAt: "2024-09-20T08:00:00.000Z",
      },
      {
        ref: "qzdemoedgeworkerqrst",
        name: "Edge Worker",
        region: "us-west-1",
        status: "COMING_UP",
        createdAt: "2025-02-01T12:00:00.000Z",
      },
      {
        ref: "qzdemopausedlegacyuv",
        name: "Legacy (paused)",
        region: "eu-west-2",
        status: "INACTIVE",
        createdAt: "2023-11-30T18:45:00.000Z",
      },
    ],
  };
}

function digest(input: string): Buffer {
  return createHash("sha256").update(input).digest();
}

/** A uuid-shaped id derived from `seed`. */
export function stableUuid(seed: string): string {
  const h = digest(seed).toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

/** A legacy HS256 project JWT (`anon` or `service_role`), as the real legacy keys look. */
function legacyJwt(ref: string, role: "anon" | "service_role"): string {
  const head = b64url({ alg: "HS256", typ: "JWT" });
  const body = b64url({ iss: "supabase", ref, role, iat: 1704067200, exp: 2019600000 });
  const sig = createHmac("sha256", `simulated-jwt-secret:${ref}`)
    .update(`${head}.${body}`)
    .digest("base64url");
  return `${head}.${body}.${sig}`;
}

function randomish(seed: string, length: number): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = Buffer.concat([digest(seed), digest(`${seed}#2`)]);
  let out = "";
  for (let i = 0; i < length; i++) {
    out += alphabet.charAt((bytes[i % bytes.length] ?? 0) % alphabet.length);
  }
  return out;
}

export interface ProjectKeys {
  anon: string;
  serviceRole: string;
  publishable: string;
  secret: string;
}

export function projectKeys(p: SimProject): ProjectKeys {
  const given = p.serviceKey;
  const givenIsSecret = given?.startsWith("sb_secret_") ?? false;
  return {
    anon: legacyJwt(p.ref, "anon"),
    serviceRole: given !== undefined && !givenIsSecret ? given : legacyJwt(p.ref, "service_role"),
    publishable: `sb_publishable_${randomish(`publishable:${p.ref}`, 22)}_${randomish(`pub:${p.ref}`, 8)}`,
    secret:
      given !== undefined && givenIsSecret
        ? given
        : `sb_secret_${randomish(`secret:${p.ref}`, 22)}_${randomish(`sec:${p.ref}`, 8)}`,
  };
}

export function createdAt(p: SimProject): string {
  return p.createdAt ?? DEFAULT_CREATED_AT;
}

export function isUnreachable(p: SimProject): boolean {
  return UNREACHABLE.has(p.status);
}

/** `V1ProjectWithDatabaseResponse` */
export function projectWithDatabase(org: SimOrg, p: SimProject): Record<string, unknown> {
  return {
    id: p.ref,
    ref: p.ref,
    organization_id: org.slug,
    organization_slug: org.slug,
    name: p.name,
    region: p.region,
    status: p.status,
    database: {
      host: `db.${p.ref}.supabase.co`,
      version: "17.6.1.111",
      postgres_engine: "17",
      release_channel: "ga",
    },
    created_at: createdAt(p),
  };
}

/** One item of `OrganizationProjectsResponse.projects`. */
export function orgProjectItem(p: SimProject): Record<string, unknown> {
  return {
    ref: p.ref,
    name: p.name,
    cloud_provider: "AWS",
    region: p.region,
    is_branch: false,
    status: p.status,
    inserted_at: createdAt(p),
    databases: [
      {
        identifier: p.ref,
        type: "PRIMARY",
        region: p.region,
        status: DB_STATUSES.has(p.status) ? p.status : "UNKNOWN",
        cloud_provider: "AWS",
        infra_compute_size: "nano",
        disk_volume_size_gb: 8,
        disk_type: "gp3",
      },
    ],
  };
}

export type OrgProjectsSort = "name_asc" | "name_desc" | "created_asc" | "created_desc";
export const ORG_PROJECTS_SORTS: readonly OrgProjectsSort[] = [
  "name_asc",
  "name_desc",
  "created_asc",
  "created_desc",
];

export function sortProjects(projects: SimProject[], sort: OrgProjectsSort): SimProject[] {
  const byName = (a: SimProject, b: SimProject) =>
    a.name.localeCompare(b.name) || a.ref.localeCompare(b.ref);
  const byCreated = (a: SimProject, b: SimProject) =>
    createdAt(a).localeCompare(createdAt(b)) || a.ref.localeCompare(b.ref);
  const out = [...projects];
  switch (sort) {
    case "name_asc":
      return out.sort(byName);
    case "name_desc":
      return out.sort((a, b) => byName(b, a));
    case "created_asc":
      return out.sort(byCreated);
    case "created_desc":
      return out.sort((a, b) => byCreated(b, a));
  }
}

/** A secret key masked with `·` after its prefix, as the real API shows it without `reveal`. */
function masked(secret: string): string {
  const prefix = secret.slice(0, "sb_secret_".length + 4);
  return `${prefix}${"·".repeat(secret.length - prefix.length)}`;
}

/** `ApiKeyResponse` of a created key. */
export function createdKeyResponse(k: SimApiKey, reveal: boolean): Record<string, unknown> {
  const prefix = k.apiKey.slice(0, `sb_${k.type}_`.length + 4);
  return {
    name: k.name,
    api_key: k.type === "secret" && !reveal ? masked(k.apiKey) : k.apiKey,
    id: k.id,
    type: k.type,
    prefix,
    description: k.description,
    hash: digest(k.apiKey).toString("base64url"),
    secret_jwt_template: k.secretJwtTemplate,
    inserted_at: k.insertedAt,
    updated_at: k.updatedAt,
  };
}

/** `ApiKeyResponse[]`; without `reveal` the secret key is masked with `·`, as the real API does. */
export function apiKeys(p: SimProject, reveal: boolean): Array<Record<string, unknown>> {
  const created = (p.createdKeys ?? []).map((k) => createdKeyResponse(k, reveal));
  const keys = projectKeys(p);
  const at = createdAt(p);
  const legacy = (name: "anon" | "service_role", apiKey: string) => ({
    name,
    api_key: apiKey,
    id: name,
    type: "legacy",
    prefix: null,
    description: name === "anon" ? "Legacy anon API key" : "Legacy service_role API key",
    hash: null,
    secret_jwt_template: null,
    inserted_at: null,
    updated_at: null,
  });
  const secretPrefix = keys.secret.slice(0, "sb_secret_".length + 4);
  if (p.legacyOnly) return [legacy("anon", keys.anon), legacy("service_role", keys.serviceRole)];
  return [
    legacy("anon", keys.anon),
    legacy("service_role", keys.serviceRole),
    {
      name: "default",
      api_key: keys.publishable,
      id: stableUuid(`publishable:${p.ref}`),
      type: "publishable",
      prefix: keys.publishable.slice(0, "sb_publishable_".length + 4),
      description: null,
      hash: digest(keys.publishable).toString("base64url"),
      secret_jwt_template: null,
      inserted_at: at,
      updated_at: at,
    },
    {
      name: "default",
      api_key: reveal ? keys.secret : masked(keys.secret),
      id: stableUuid(`secret:${p.ref}`),
      type: "secret",
      prefix: secretPrefix,
      description: null,
      hash: digest(keys.secret).toString("base64url"),
      secret_jwt_template: { role: "service_role" },
      inserted_at: at,
      updated_at: at,
    },
    ...created,
  ];
}

/** `V1ServiceHealthResponse[]` for the requested services, from the project's status. */
export function health(p: SimProject, services: HealthService[]): Array<Record<string, unknown>> {
  const status =
    p.status === "ACTIVE_HEALTHY"
      ? "ACTIVE_HEALTHY"
      : STARTING.has(p.status)
        ? "COMING_UP"
        : "UNHEALTHY";
  return services.map((name) => {
    const item: Record<string, unknown> = { name, healthy: status === "ACTIVE_HEALTHY", status };
    if (status === "UNHEALTHY") item["error"] = `Project is ${p.status.toLowerCase()}`;
    return item;
  });
}
