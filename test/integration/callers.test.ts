/**
 * Every HTTP definition of the app enforces its declared caller: walked from `functions/all.ts`,
 * each route is called through its own handler at every caller level below its own and must
 * refuse with the level's status and code in the one error shape; a copy of the route with a
 * recording handler proves its own level (and those above) get through with what was proved.
 */
import { createHmac, randomUUID } from "node:crypto";

import { HttpRequest, HttpResponse, InvocationContext } from "@azure/functions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { allDefinitions } from "../../functions/all.js";
import { SESSION_COOKIE, bindUser, startSession } from "../../lib/auth/session.js";
import type { Caller } from "../../lib/callers.js";
import {
  defineHttp,
  type HttpDefinition,
  type HttpInput,
  type HttpRouteSpec,
} from "../../lib/functions.js";
import { errorBodySchema } from "../../lib/http.js";
import type { Services } from "../../lib/services.js";
import type { Platform } from "../../local/platform.js";
import { randomRef, randomSlug, startTestPlatform } from "../helpers/platform.js";

/** What a request carries: nothing, an unverified session, a verified one; plus the extras. */
type Level = "anyone" | "session" | "verified";
const LEVELS: Level[] = ["anyone", "session", "verified"];

/** What each caller refuses a request of a lower level with. */
const REFUSALS: Record<Exclude<Caller, "anyone">, Partial<Record<Level, [number, string]>>> = {
  session: { anyone: [401, "unauthenticated"] },
  verified: { anyone: [401, "unauthenticated"], session: [403, "verification_required"] },
  // The admin key is the Functions host's check (authLevel admin); the handler names the operator.
  admin: {
    anyone: [400, "actor_required"],
    session: [400, "actor_required"],
    verified: [400, "actor_required"],
  },
  stripe: {
    anyone: [400, "invalid_signature"],
    session: [400, "invalid_signature"],
    verified: [400, "invalid_signature"],
  },
};

const httpDefinitions = allDefinitions.filter((d): d is HttpDefinition => d.kind === "http");

let platform: Platform;
let services: Services;
let cookies: Record<Level, string | undefined>;
let sessionIds: Record<"session" | "verified", string>;

beforeAll(async () => {
  platform = await startTestPlatform();
  services = platform.services;
  const org = randomSlug("callers");
  const plain = await startSession(services, org);
  const verified = await startSession(services, org);
  await bindUser(services, verified.session.id, { id: randomUUID(), name: "Ada", role: "Owner" });
  cookies = { anyone: undefined, session: plain.cookie.value, verified: verified.cookie.value };
  sessionIds = { session: plain.session.id, verified: verified.session.id };
});
afterAll(async () => {
  await platform.close();
});

/** The route with its parameters filled in with well-formed values. */
function pathOf(def: HttpDefinition): { url: string; params: Record<string, string> } {
  const params: Record<string, string> = {};
  const route = def.route.replace(/\{(\w+)\}/g, (_m, name: string) => {
    params[name] = name === "ref" ? randomRef() : randomSlug();
    return params[name];
  });
  return { url: new URL(`/api/${route}`, services.config.PUBLIC_BASE_URL).toString(), params };
}

async function call(
  def: HttpDefinition,
  level: Level,
  extra: Record<string, string> = {},
  body = "{}",
): Promise<{ status: number; json: unknown }> {
  const method = def.methods[0] ?? "GET";
  const { url, params } = pathOf(def);
  const cookie = cookies[level];
  const req = new HttpRequest({
    method,
    url,
    params,
    headers: {
      origin: new URL(services.config.PUBLIC_BASE_URL).origin,
      "content-type": "application/json",
      ...(cookie ? { cookie: `${SESSION_COOKIE}=${cookie}` } : {}),
      ...extra,
    },
    ...(method === "GET" ? {} : { body: { string: body } }),
  });
  const ctx = new InvocationContext({ functionName: def.name, logHandler: () => undefined });
  const res = new HttpResponse(await def.handler(req, ctx, services));
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as unknown) : undefined };
}

/**
 * The same route and caller, its input left unvalidated and its handler replaced by one that
 * records what it was handed.
 */
function recording(def: HttpDefinition) {
  const seen: Array<HttpInput<unknown, unknown, unknown>["caller"]> = [];
  const { params: _p, query: _q, body: _b, ...rest } = def.spec;
  const spec = {
    ...rest,
    handler: (input: HttpInput<unknown, unknown, unknown>) => {
      seen.push(input.caller);
      return Promise.resolve({ status: 299 });
    },
  } as HttpRouteSpec;
  return { def: defineHttp(spec), seen };
}

function signed(payload: string): string {
  const t = Math.floor(services.clock.now().getTime() / 1000);
  const v1 = createHmac("sha256", services.config.STRIPE_WEBHOOK_SECRET)
    .update(`${t}.${payload}`)
    .digest("hex");
  return `t=${t},v1=${v1}`;
}

describe("caller enforcement, walking every HTTP definition", () => {
  it("when the app is listed, then every caller level is present", () => {
    const callers = new Set(httpDefinitions.map((d) => d.spec.caller));
    expect([...callers].sort()).toEqual(["admin", "anyone", "session", "stripe", "verified"]);
    for (const d of httpDefinitions) {
      expect(d.authLevel, d.name).toBe(d.spec.caller === "admin" ? "admin" : "anonymous");
    }
  });

  it.each(httpDefinitions.filter((d) => d.spec.caller !== "anyone").map((d) => [d.name, d]))(
    "when %s is called by a level below its caller, then it is refused in the error shape",
    async (_name, def) => {
      const refusals = REFUSALS[def.spec.caller as Exclude<Caller, "anyone">];
      for (const level of LEVELS) {
        const expected = refusals[level];
        if (!expected) continue;
        const { status, json } = await call(def, level);
        expect(status, `${def.name} as ${level}`).toBe(expected[0]);
        const body = errorBodySchema.strict().parse(json);
        expect(body.error.code, `${def.name} as ${level}`).toBe(expected[1]);
      }
    },
  );

  it.each(httpDefinitions.map((d) => [d.name, d]))(
    "when %s is called at its caller level or above, then the handler gets what was proved",
    async (_name, original) => {
      const { def, seen } = recording(original);
      const caller = original.spec.caller;
      if (caller === "admin") {
        const res = await call(def, "anyone", { "x-ops-actor": "on-call" });
        expect(res.status).toBe(299);
        expect(seen).toEqual([{ actor: "on-call" }]);
        return;
      }
      if (caller === "stripe") {
        const payload = JSON.stringify({ id: "evt_walk", type: "ping", data: { object: {} } });
        const res = await call(def, "anyone", { "stripe-signature": signed(payload) }, payload);
        expect(res.status).toBe(299);
        expect(seen).toEqual([expect.objectContaining({ id: "evt_walk", type: "ping" })]);
        return;
      }
      const allowed = LEVELS.slice(LEVELS.indexOf(caller));
      for (const level of allowed) {
        const res = await call(def, level);
        expect(res.status, `${original.name} as ${level}`).toBe(299);
      }
      const handed = seen.map((s) => (s as { id?: string } | undefined)?.id);
      // `anyone` proves nothing and hands nothing, whoever calls.
      const expected = allowed.map((l) =>
        caller === "anyone" || l === "anyone" ? undefined : sessionIds[l],
      );
      expect(handed).toEqual(expected);
      if (caller === "verified") {
        expect(seen.every((s) => (s as { user?: unknown }).user)).toBe(true);
      }
    },
  );
});
