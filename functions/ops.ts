/**
 * Operator routes. `authLevel: "admin"`: only the host's master/system keys reach them (locally,
 * the local host's admin key). They live under `/api/ops/...` because the Functions host reserves
 * routes beginning with `admin`. Every call names its operator in `X-Ops-Actor` (checked with
 * the caller, `lib/callers.ts`) and every action is audit-logged.
 */
import { z } from "zod";

import { audit, listAudit } from "../lib/audit.js";
import { listDeadLetters } from "../lib/dead-letters.js";
import { revokeGrafanaSessions } from "../lib/grafana-signin/revocation.js";
import { rotateGrafanaPassword } from "../lib/provisioning/api.js";
import { notFound } from "../lib/errors.js";
import { defineHttp, type FunctionDefinition } from "../lib/functions.js";
import { accepted, noContent, ok, projectRefSchema } from "../lib/http.js";
import { INSTANCE_STATES } from "../lib/instances/lifecycle.js";
import { instanceViewSchema, toView } from "../lib/instances/view.js";
import {
  findInstances,
  forceDelete,
  grantFreeInstances,
  replayDeadLetters,
  retryInstance,
  runReconcilerNow,
  upgradeInstances,
} from "../lib/ops.js";
import { describeRollout } from "../lib/provisioning/rollout.js";

const orgSchema = z.string().regex(/^[\w-]{1,64}$/, "must be an organization slug");
const queueSchema = z.enum(["provisioning", "gateway"]);
const instanceParams = z.object({ org: orgSchema, ref: projectRefSchema });
const opsInstanceSchema = instanceViewSchema.extend({ org: z.string(), operationId: z.string() });
const ERRORS = [400, 401, 404, 409];
const rolloutViewSchema = z.object({
  rolloutId: z.string(),
  hostVersion: z.string(),
  status: z
    .enum(["running", "done", "halted"])
    .describe("`halted`: failed upgrades hold every slot of the batch; retry them."),
  upgraded: z.number().int(),
  inFlight: z.number().int(),
  failed: z.number().int(),
  remaining: z.number().int(),
  createdAt: z.string(),
  batch: z.number().int(),
  max: z.number().int(),
});

const common = {
  caller: "admin" as const,
  tags: ["operators"],
  checkOrigin: false,
};

export const definitions: FunctionDefinition[] = [
  defineHttp({
    ...common,
    name: "opsListInstances",
    route: "ops/instances",
    methods: ["GET"],
    summary: "Instances across organizations, filtered by state, org and staleness.",
    query: z.object({
      state: z.enum(INSTANCE_STATES).optional(),
      org: orgSchema.optional(),
      staleMinutes: z.coerce.number().int().min(0).max(525_600).optional(),
    }),
    responses: {
      200: {
        description: "Matching instances.",
        schema: z.object({ instances: z.array(opsInstanceSchema) }),
      },
    },
    errors: ERRORS,
    handler: async ({ services, query }) => {
      const found = await findInstances(services, query);
      return ok({
        instances: found.map((i) => ({ ...toView(i), org: i.org, operationId: i.operationId })),
      });
    },
  }),
  defineHttp({
    ...common,
    name: "opsRetryInstance",
    route: "ops/instances/{org}/{ref}/retry",
    methods: ["POST"],
    summary: "Start a fresh operation for a Failed instance.",
    params: instanceParams,
    responses: {
      202: { description: "The new operation was started.", schema: instanceViewSchema },
    },
    errors: [...ERRORS, 402],
    handler: async ({ services, caller: operator, ctx, params }) =>
      accepted(toView(await retryInstance(services, operator.actor, params.org, params.ref, ctx))),
  }),
  defineHttp({
    ...common,
    name: "opsForceDelete",
    route: "ops/instances/{org}/{ref}/force-delete",
    methods: ["POST"],
    summary: "Delete every Azure resource of an instance, whatever its state.",
    params: instanceParams,
    responses: { 202: { description: "Deprovisioning started.", schema: instanceViewSchema } },
    errors: ERRORS,
    handler: async ({ services, caller: operator, ctx, params }) =>
      accepted(toView(await forceDelete(services, operator.actor, params.org, params.ref, ctx))),
  }),
  defineHttp({
    ...common,
    name: "opsFreeInstances",
    route: "ops/orgs/{org}/free-instances",
    methods: ["PUT"],
    summary: "Grant (or revoke, with 0) free instances to an organization.",
    params: z.object({ org: orgSchema }),
    body: z.object({ count: z.number().int().min(0).max(1000) }),
    responses: { 204: { description: "The grant was set." } },
    errors: ERRORS,
    handler: async ({ services, caller: operator, params, body }) => {
      await grantFreeInstances(services, operator.actor, params.org, body.count);
      return noContent();
    },
  }),
  defineHttp({
    ...common,
    name: "opsRevokeGrafanaSessions",
    route: "ops/orgs/{org}/grafana-sessions/revoke",
    methods: ["POST"],
    summary:
      "Sign every member of an organization out of all its Grafana hosts: the gateway refuses " +
      "sessions and tickets issued before now (applied with the next gateway push, seconds).",
    params: z.object({ org: orgSchema }),
    responses: {
      200: {
        description: "The revocation moment.",
        schema: z.object({ notBefore: z.iso.datetime() }),
      },
    },
    errors: ERRORS,
    handler: async ({ services, caller: operator, params }) => {
      const { notBefore } = await revokeGrafanaSessions(services, operator.actor, params.org);
      return ok({ notBefore: notBefore.toISOString() });
    },
  }),
  defineHttp({
    ...common,
    name: "opsGrafanaPassword",
    route: "ops/instances/{org}/{ref}/grafana-password",
    methods: ["POST"],
    summary:
      "Break-glass: set a new Grafana admin password and return it (members sign in through " +
      "the gateway and never see it). Audit-logged.",
    params: instanceParams,
    responses: {
      200: {
        description: "The new password (user `admin`), shown once.",
        schema: z.object({ password: z.string() }),
      },
    },
    errors: [...ERRORS, 502, 503],
    handler: async ({ services, caller: operator, params }) => {
      const password = await rotateGrafanaPassword(services, params.org, params.ref);
      await audit(services, {
        actor: operator.actor,
        action: "instance.grafana_password_rotated",
        target: `${params.org}/${params.ref}`,
        details: {},
      });
      return ok({ password });
    },
  }),
  defineHttp({
    ...common,
    name: "opsListDeadLetters",
    route: "ops/dead-letters",
    methods: ["GET"],
    summary: "Dead-lettered messages of a queue, with why they were dead-lettered.",
    query: z.object({
      queue: queueSchema,
      includeReplayed: z.enum(["true", "false"]).optional(),
      max: z.coerce.number().int().min(1).max(500).optional(),
    }),
    responses: {
      200: {
        description: "Dead letters, oldest first.",
        schema: z.object({
          deadLetters: z.array(
            z.object({
              id: z.string(),
              messageId: z.string(),
              sessionId: z.string().nullable(),
              reason: z.string().nullable(),
              description: z.string().nullable(),
              deliveryCount: z.number().nullable(),
              body: z.unknown(),
              recordedAt: z.string(),
              replayedAt: z.string().nullable(),
            }),
          ),
        }),
      },
    },
    errors: ERRORS,
    handler: async ({ services, query }) => {
      const records = await listDeadLetters(services, query.queue, {
        includeReplayed: query.includeReplayed === "true",
        max: query.max ?? 100,
      });
      return ok({
        deadLetters: records.map((r) => ({
          id: r.id,
          messageId: r.messageId,
          sessionId: r.sessionId ?? null,
          reason: r.reason ?? null,
          description: r.description ?? null,
          deliveryCount: r.deliveryCount ?? null,
          body: r.body,
          recordedAt: r.recordedAt.toISOString(),
          replayedAt: r.replayedAt?.toISOString() ?? null,
        })),
      });
    },
  }),
  defineHttp({
    ...common,
    name: "opsReplayDeadLetters",
    route: "ops/dead-letters/replay",
    methods: ["POST"],
    summary: "Replay dead letters: one by id, or the oldest not yet replayed.",
    body: z.object({
      queue: queueSchema,
      id: z
        .string()
        .regex(/^[0-9a-f]{32}$/)
        .optional(),
      max: z.number().int().min(1).max(100).default(10),
    }),
    responses: {
      200: {
        description: "What was replayed.",
        schema: z.object({
          results: z.array(
            z.object({
              id: z.string(),
              messageId: z.string(),
              outcome: z.enum(["replayed", "skipped"]),
              detail: z.string(),
            }),
          ),
        }),
      },
    },
    errors: [...ERRORS, 402],
    handler: async ({ services, caller: operator, ctx, body }) =>
      ok({
        results: await replayDeadLetters(
          services,
          operator.actor,
          body.queue,
          { id: body.id, max: body.max },
          ctx,
        ),
      }),
  }),
  defineHttp({
    ...common,
    name: "opsUpgradeInstances",
    route: "ops/instances/upgrade",
    methods: ["POST"],
    summary:
      "Roll Running instances to a Grafana host version: the configured template spec (or the given version of it) and this build's pinned images, in batches, keeping each data disk.",
    body: z
      .object({
        templateSpecVersion: z
          .string()
          .regex(/^[\w.-]{1,64}$/, "must be a template spec version")
          .optional(),
        max: z.number().int().min(1).max(100_000).optional(),
        batch: z.number().int().min(1).max(100).optional(),
        org: orgSchema.optional(),
      })
      .strict(),
    responses: { 202: { description: "The rollout started.", schema: rolloutViewSchema } },
    errors: ERRORS,
    handler: async ({ services, caller: operator, body }) => {
      await upgradeInstances(services, operator.actor, body);
      const progress = await describeRollout(services);
      if (!progress) throw notFound("The rollout could not be read back.");
      return accepted(progress);
    },
  }),
  defineHttp({
    ...common,
    name: "opsRollout",
    route: "ops/rollout",
    methods: ["GET"],
    summary: "Progress of the current (or last) rollout of a Grafana host version.",
    responses: { 200: { description: "The rollout's progress.", schema: rolloutViewSchema } },
    errors: ERRORS,
    handler: async ({ services }) => {
      const progress = await describeRollout(services);
      if (!progress) throw notFound("No rollout has been started.");
      return ok(progress);
    },
  }),
  defineHttp({
    ...common,
    name: "opsRunReconciler",
    route: "ops/reconciler/run",
    methods: ["POST"],
    summary: "Run the reconciler now and return its report.",
    responses: {
      200: { description: "The reconciler's report.", schema: z.record(z.string(), z.unknown()) },
    },
    errors: ERRORS,
    handler: async ({ services, caller: operator, ctx }) =>
      ok(await runReconcilerNow(services, operator.actor, ctx)),
  }),
  defineHttp({
    ...common,
    name: "opsAudit",
    route: "ops/audit",
    methods: ["GET"],
    summary: "The audit log of one day, newest first.",
    query: z.object({ day: z.iso.date() }),
    responses: {
      200: {
        description: "Audit entries.",
        schema: z.object({
          entries: z.array(
            z.object({
              at: z.string(),
              actor: z.string(),
              action: z.string(),
              target: z.string(),
              details: z.record(z.string(), z.unknown()),
            }),
          ),
        }),
      },
    },
    errors: ERRORS,
    handler: async ({ services, query }) => {
      const entries = await listAudit(services, new Date(`${query.day}T00:00:00Z`));
      return ok({
        entries: entries.map((e) => ({ ...e, at: e.at.toISOString(), details: e.details ?? {} })),
      });
    },
  }),
];
