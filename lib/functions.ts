/**
 * Function definitions as data. Every `functions/<area>.ts` exports a list of these; the Azure
 * Functions entry (`functions/index.ts`) registers them with `app.http` / `app.serviceBusQueue` /
 * `app.timer`, and the local host serves the very same list. HTTP definitions carry the zod
 * schemas that validate their input and describe their output; the OpenAPI document is generated
 * from them.
 */
import type { HttpRequest, HttpResponseInit, InvocationContext, Timer } from "@azure/functions";
import type { z } from "zod";

import { resolveCaller, type Caller, type ResolvedCaller } from "./callers.js";
import { assertSameOrigin, parseWith, readJsonBody, toResponse } from "./http.js";
import type { Services } from "./services.js";

export type { Caller } from "./callers.js";
export type HttpMethod = "GET" | "POST" | "PUT" | "DELETE" | "PATCH";
export type AuthLevel = "anonymous" | "function" | "admin";

export interface HttpInput<P, Q, B, C extends Caller = Caller> {
  req: HttpRequest;
  ctx: InvocationContext;
  services: Services;
  /** What proving the route's caller yielded: the session, the verified session, the operator. */
  caller: ResolvedCaller[C];
  params: P;
  query: Q;
  body: B;
}

export interface ResponseSpec {
  description: string;
  schema?: z.ZodType;
  /** Non-JSON responses (redirects, HTML). */
  contentType?: string;
}

export interface HttpRouteSpec<
  PS extends z.ZodType = z.ZodType,
  QS extends z.ZodType = z.ZodType,
  BS extends z.ZodType = z.ZodType,
  C extends Caller = Caller,
> {
  name: string;
  /** Route below the `api` prefix, in Functions syntax: `projects/{ref}/grafana`. */
  route: string;
  methods: HttpMethod[];
  /**
   * Who may call it; `defineHttp` enforces it before reading any input. `admin` routes get the
   * host's `authLevel: "admin"` (the admin key), every other route `anonymous`.
   */
  caller: C;
  summary: string;
  tags: string[];
  params?: PS;
  query?: QS;
  body?: BS;
  responses: Record<number, ResponseSpec>;
  /** Error statuses this route may answer with (documented with the one error shape). */
  errors: number[];
  /** What a documented error status means on this route (its codes), added to the description. */
  errorNotes?: Partial<Record<number, string>>;
  /** The CSRF origin check; on by default for every method but GET. */
  checkOrigin?: boolean;
  handler: (
    input: HttpInput<z.output<PS>, z.output<QS>, z.output<BS>, C>,
  ) => Promise<HttpResponseInit>;
}

/** A route's description without its handler: the OpenAPI document and the tests read it. */
export type HttpRouteInfo = Omit<HttpRouteSpec, "handler">;

export interface HttpDefinition {
  kind: "http";
  name: string;
  route: string;
  methods: HttpMethod[];
  authLevel: AuthLevel;
  spec: HttpRouteInfo;
  handler: (
    req: HttpRequest,
    ctx: InvocationContext,
    services: Services,
  ) => Promise<HttpResponseInit>;
}

export interface QueueDefinition {
  kind: "serviceBusQueue";
  name: string;
  /** Setting that holds the queue name (Functions binding expression `%NAME%`). */
  queueSetting: "PROVISIONING_QUEUE" | "GATEWAY_QUEUE";
  isSessionsEnabled: boolean;
  /**
   * Bind to the queue's dead-letter sub-queue (`<queue>/$DeadLetterQueue`) instead. Dead-letter
   * queues are never session-enabled (their messages keep their sessionId).
   */
  subQueue?: "deadLetter";
  handler: (message: unknown, ctx: InvocationContext, services: Services) => Promise<void>;
}

export interface TimerDefinition {
  kind: "timer";
  name: string;
  /** NCRONTAB with seconds, as the Functions host expects. */
  schedule: string;
  handler: (timer: Timer, ctx: InvocationContext, services: Services) => Promise<void>;
}

export type FunctionDefinition = HttpDefinition | QueueDefinition | TimerDefinition;

/**
 * Builds an HTTP definition whose handler checks the Origin, proves the caller, validates input
 * and maps every error to a response.
 */
export function defineHttp<
  PS extends z.ZodType,
  QS extends z.ZodType,
  BS extends z.ZodType,
  C extends Caller,
>(spec: HttpRouteSpec<PS, QS, BS, C>): HttpDefinition {
  const checkOrigin = spec.checkOrigin ?? !spec.methods.every((m) => m === "GET");
  // A Stripe route's body is the signed payload: the caller check reads it raw.
  const readBody = spec.body !== undefined && spec.caller !== "stripe";
  return {
    kind: "http",
    name: spec.name,
    route: spec.route,
    methods: spec.methods,
    authLevel: spec.caller === "admin" ? "admin" : "anonymous",
    spec,
    handler: async (req, ctx, services) => {
      try {
        if (checkOrigin && req.method !== "GET") {
          assertSameOrigin(req, services.config.PUBLIC_BASE_URL);
        }
        const caller = await resolveCaller(spec.caller, services, req);
        const params = spec.params ? parseWith(spec.params, { ...req.params }, "path") : undefined;
        const query = spec.query
          ? parseWith(spec.query, Object.fromEntries(req.query.entries()), "query")
          : undefined;
        const body =
          spec.body && readBody ? parseWith(spec.body, await readJsonBody(req), "body") : undefined;
        return await spec.handler({
          req,
          ctx,
          services,
          caller,
          params: params as z.output<PS>,
          query: query as z.output<QS>,
          body: body as z.output<BS>,
        });
      } catch (err) {
        return toResponse(err, ctx);
      }
    },
  };
}

export function defineQueue(def: Omit<QueueDefinition, "kind">): QueueDefinition {
  if (def.subQueue === "deadLetter" && def.isSessionsEnabled) {
    throw new Error(`${def.name}: a dead-letter queue is not session-enabled`);
  }
  return { kind: "serviceBusQueue", ...def };
}

/** The entity path a queue definition binds to (`%SETTING%` resolved by the caller). */
export function queueEntityPath(def: Pick<QueueDefinition, "subQueue">, queueName: string): string {
  return def.subQueue === "deadLetter" ? `${queueName}/$DeadLetterQueue` : queueName;
}

export function defineTimer(def: Omit<TimerDefinition, "kind">): TimerDefinition {
  return { kind: "timer", ...def };
}
