/**
 * A project's Grafana instance: provision, poll, deprovision, and open it (a one-time sign-in
 * ticket for the gateway). The admin password is break-glass only: its rotation is an operator
 * route (`functions/ops.ts`), and no answer here ever carries it.
 */
import { z } from "zod";

import { configStatus } from "../lib/alerts/apply.js";
import { notFound } from "../lib/errors.js";
import { defineHttp, type FunctionDefinition } from "../lib/functions.js";
import { accepted, ok, projectRefSchema } from "../lib/http.js";
import { getInstance } from "../lib/instances/store.js";
import { instanceViewSchema, toView } from "../lib/instances/view.js";
import { issueGrafanaTicket } from "../lib/grafana-signin/issue.js";
import { requestDeprovision, requestProvision } from "../lib/provisioning/api.js";
import { rotateInstanceKey } from "../lib/provisioning/key-rotation.js";
import { RATE_LIMITS, enforceRateLimit } from "../lib/rate-limit.js";
import { forbidden } from "../lib/errors.js";
import { configVersionSchema, lastConfigErrorSchema } from "./alerts.js";

const params = z.object({ ref: projectRefSchema });
const route = "projects/{ref}/grafana";

const grafanaSessionResponseSchema = z.object({
  url: z
    .url()
    .describe(
      "Open this in the browser right away: `https://<ref>.<domain>/_supafana/session?ticket=…`. " +
        "The ticket is good once, for 60 seconds; the gateway turns it into a session on that host.",
    ),
});

export const definitions: FunctionDefinition[] = [
  defineHttp({
    name: "grafanaProvision",
    route,
    methods: ["PUT"],
    caller: "verified",
    summary: "Provision the project's Grafana (idempotent: an operation under way is returned).",
    tags: ["grafana"],
    params,
    responses: {
      202: {
        description: "The instance; poll GET until it is Running.",
        schema: instanceViewSchema,
      },
    },
    errors: [400, 401, 402, 403, 404, 409, 429, 502, 503],
    errorNotes: {
      409:
        "`project_paused`: the Supabase project is paused (or otherwise not running); restore " +
        "it in Supabase first. `project_owned_elsewhere`: another organization monitors it. " +
        "`instance_deleting`: the instance is being deleted.",
    },
    handler: async ({ services, caller: session, ctx, params: p }) => {
      await enforceRateLimit(services, RATE_LIMITS.provisioning, {
        session: session.id,
        org: session.org,
      });
      const instance = await requestProvision(
        services,
        { org: session.org, ref: p.ref, userId: session.user.id },
        ctx,
      );
      return accepted(toView(instance));
    },
  }),
  defineHttp({
    name: "grafanaGet",
    route,
    methods: ["GET"],
    caller: "session",
    summary: "The project's Grafana instance (the poll target).",
    tags: ["grafana"],
    params,
    responses: {
      200: {
        description: "The instance, with the state of its alerting configuration.",
        // Always present here; optional in the schema so the instance of the project list
        // (which has no alerting state) stays a valid value of this shape for clients.
        schema: instanceViewSchema.extend({
          configVersion: configVersionSchema.optional(),
          lastConfigError: lastConfigErrorSchema.optional(),
        }),
      },
    },
    errors: [400, 401, 404],
    handler: async ({ services, caller: session, params: p }) => {
      const instance = await getInstance(services, session.org, p.ref);
      if (!instance) throw notFound("This project has no Grafana instance.");
      return ok({ ...toView(instance), ...(await configStatus(services, session.org, p.ref)) });
    },
  }),
  defineHttp({
    name: "grafanaDeprovision",
    route,
    methods: ["DELETE"],
    caller: "verified",
    summary:
      "Deprovision the project's Grafana: every Azure resource, the DNS record and the route.",
    tags: ["grafana"],
    params,
    responses: {
      202: {
        description: "The instance; poll GET until it is Deleted.",
        schema: instanceViewSchema,
      },
    },
    errors: [400, 401, 403, 404, 503],
    handler: async ({ services, caller: session, ctx, params: p }) => {
      const instance = await requestDeprovision(
        services,
        { org: session.org, ref: p.ref, reason: "requested", userId: session.user.id },
        ctx,
      );
      return accepted(toView(instance));
    },
  }),
  defineHttp({
    name: "grafanaSession",
    route: `${route}/session`,
    methods: ["POST"],
    caller: "verified",
    summary:
      "Open Grafana: a one-time sign-in link for the project's Grafana, as the session's user " +
      "with the Grafana role of their Supabase role (Owner/Administrator → Admin, Developer → " +
      "Editor, others → Viewer).",
    tags: ["grafana"],
    params,
    responses: {
      200: { description: "The sign-in link.", schema: grafanaSessionResponseSchema },
    },
    errors: [400, 401, 403, 404, 409, 429, 502, 503],
    handler: async ({ services, caller: session, ctx, params: p }) => {
      await enforceRateLimit(services, RATE_LIMITS.grafanaSession, {
        session: session.id,
        org: session.org,
      });
      const { url } = await issueGrafanaTicket(services, session, p.ref, ctx);
      return ok({ url });
    },
  }),
];

/** Organization roles that may rotate the key Supabase metrics are scraped with. */
const KEY_ROTATION_ROLES = ["Owner", "Administrator"];

definitions.push(
  defineHttp({
    name: "grafanaRotateKey",
    route: `${route}/rotate-key`,
    methods: ["POST"],
    caller: "verified",
    summary:
      "Replace the instance's dedicated Supabase key: the host switches to a new key, then the old one is deleted (Owner or Administrator).",
    tags: ["grafana"],
    params,
    responses: {
      200: { description: "The instance after the rotation.", schema: instanceViewSchema },
    },
    errors: [400, 401, 403, 404, 409, 429, 502, 503],
    handler: async ({ services, caller: session, ctx, params: p }) => {
      if (!KEY_ROTATION_ROLES.includes(session.user.role))
        throw forbidden("Only an Owner or Administrator of the organization can rotate the key.");
      await enforceRateLimit(services, RATE_LIMITS.provisioning, {
        session: session.id,
        org: session.org,
      });
      return ok(toView(await rotateInstanceKey(services, ctx, session.org, p.ref, "requested")));
    },
  }),
);
