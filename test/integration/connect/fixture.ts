/**
 * Shared set-up for the connect tests: a platform with a clock the tests can move, random orgs in
 * the Supabase simulator, and the full OAuth dance through the handlers.
 */
import { randomUUID } from "node:crypto";

import { expect } from "vitest";

import { definitions as auth } from "../../../functions/auth.js";
import { definitions as me } from "../../../functions/me.js";
import { definitions as projects } from "../../../functions/projects.js";
import type { FunctionDefinition } from "../../../lib/functions.js";
import type { Services } from "../../../lib/services.js";
import { randomTablePrefix, type Platform } from "../../../local/platform.js";
import type { SimMember, SimOrg, SupabaseSimulator } from "../../../local/simulators/supabase.js";
import { TestClient, type TestResponse } from "../../helpers/client.js";
import { randomRef, randomSlug, startTestPlatform } from "../../helpers/platform.js";

export const connectDefinitions: readonly FunctionDefinition[] = [...auth, ...me, ...projects];

/** Real time plus an offset the tests move (token, state, code and cache expiry). */
export function movableClock() {
  let offset = 0;
  return {
    now: () => new Date(Date.now() + offset),
    advance(ms: number) {
      offset += ms;
    },
    reset() {
      offset = 0;
    },
  };
}

export interface ConnectPlatform {
  platform: Platform;
  services: Services;
  supabase: SupabaseSimulator;
  clock: ReturnType<typeof movableClock>;
  tablePrefix: string;
  client(): TestClient;
}

export async function startConnectPlatform(): Promise<ConnectPlatform> {
  const clock = movableClock();
  const tablePrefix = randomTablePrefix();
  const platform = await startTestPlatform({ clock, tablePrefix });
  const supabase = platform.supabase;
  if (!supabase) throw new Error("the Supabase simulator did not start");
  return {
    platform,
    services: platform.services,
    supabase,
    clock,
    tablePrefix,
    client: () => new TestClient(connectDefinitions, platform.services),
  };
}

export function member(overrides: Partial<SimMember> = {}): SimMember {
  const id = randomUUID();
  return {
    user_id: id,
    user_name: `user-${id.slice(0, 6)}`,
    email: `${id.slice(0, 8)}@members.example`,
    role_name: "Owner",
    mfa_enabled: false,
    ...overrides,
  };
}

/** A new org in the simulator with `projects` projects and the given members. */
export function addOrg(
  supabase: SupabaseSimulator,
  opts: { projects?: number; members?: SimMember[]; name?: string } = {},
): SimOrg {
  const slug = randomSlug("conn");
  const org: SimOrg = {
    slug,
    name: opts.name ?? `Org ${slug}`,
    members: opts.members ?? [member()],
    projects: Array.from({ length: opts.projects ?? 3 }, (_, i) => ({
      ref: randomRef(),
      name: `Project ${i + 1}`,
      region: i % 2 ? "eu-central-1" : "us-east-1",
      status: i === 2 ? "INACTIVE" : "ACTIVE_HEALTHY",
    })),
  };
  supabase.addOrg(org);
  return org;
}

/** GET /api/auth/login and the authorize URL it redirects to. */
export async function startLogin(client: TestClient, returnTo = "/dashboard") {
  const res = await client.get(`/api/auth/login?returnTo=${encodeURIComponent(returnTo)}`);
  expect(res.status).toBe(302);
  const authorize = new URL(res.headers.get("location") ?? "");
  return { res, authorize, state: authorize.searchParams.get("state") ?? "" };
}

/** The path and query of a URL (what the TestClient takes). */
export const pathOf = (url: string) => {
  const u = new URL(url);
  return `${u.pathname}${u.search}`;
};

/** The whole connection: login, consent for `orgSlug` in the simulator, callback. */
export async function connect(
  client: TestClient,
  supabase: SupabaseSimulator,
  orgSlug: string,
  returnTo = "/dashboard",
): Promise<TestResponse> {
  const { authorize } = await startLogin(client, returnTo);
  const callback = supabase.authorize(authorize.searchParams, orgSlug);
  return client.get(pathOf(callback));
}

interface ProjectItem {
  ref: string;
  name: string;
  region: string;
  status: string;
  instance: Record<string, unknown> | null;
}

/** Typed views of response bodies. */
export const errorOf = (res: TestResponse) =>
  (res.body as { error: { code: string; message: string; details?: Record<string, unknown> } })
    .error;
export const projectsOf = (res: TestResponse) => (res.body as { projects: ProjectItem[] }).projects;
export const userOf = (res: TestResponse) => (res.body as { user: unknown }).user;
export const sentToOf = (res: TestResponse) => (res.body as { sentTo: string }).sentTo;
export const memberIdsOf = (res: TestResponse) =>
  (res.body as Array<{ userId: string }>).map((m) => m.userId);

/** Every entity of some tables, as one JSON string (what an operator with table access sees). */
export async function rawTables(
  services: Services,
  names: Parameters<Services["tables"]["client"]>[0][],
) {
  const rows: unknown[] = [];
  for (const name of names) {
    for await (const e of services.tables.client(name).listEntities()) rows.push(e);
  }
  return JSON.stringify(rows);
}

export async function countRows(
  services: Services,
  name: Parameters<Services["tables"]["client"]>[0],
) {
  let n = 0;
  for await (const _ of services.tables.client(name).listEntities()) n++;
  return n;
}
