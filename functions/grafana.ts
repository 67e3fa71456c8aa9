/** A project's Grafana instance: provision, poll, deprovision, rotate the admin password. */
import { z } from "zod";

import { requireSession, requireVerifiedUser } from "../lib/auth/session.js";
import { notFound } from "../lib/errors.js";
import { defineHttp, type FunctionDefinition } from "../lib/functions.js";
import { accepted, ok, projectRefSchema } from "../lib/http.js";
import { getInstance, instanceViewSchema, toView } from "../lib/instances/store.js";
import {
  requestDeprovision,
  requestProvision,
  rotateGrafanaPassword,
} from "../lib/provisioning/api.js";
import { rotateInstanceKey } from "../lib/provisioning/key-rotation.js";
import { RATE_LIMITS, enforceRateLimit } from "../lib/rate-limit.js";
import { forbidden } from "../lib/errors.js";

const params = z.object({ ref: projectRefSchema });
const route = "projects/{ref}/grafana";

export const passwordResponseSchema = z.object({
  password: z.string().describe("The new Grafana admin password (user `admin`). Shown once."),
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
    handler: async ({ services, req, ctx, params: p }) => {
      const session = await requireVerifiedUser(services, req);
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
    responses: { 200: { description: "The instance.", schema: instanceViewSchema } },
    errors: [400, 401, 404],
    handler: async ({ services, req, params: p }) => {
      const session = await requireSession(services, req);
      const instance = await getInstance(services, session.org, p.ref);
      if (!instance) throw notFound("This project has no Grafana instance.");
      return ok(toView(instance));
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
    handler: async ({ services, req, ctx, params: p }) => {
      const session = await requireVerifiedUser(services, req);
      const instance = await requestDeprovision(
        services,
        { org: session.org, ref: p.ref, reason: "requested", userId: session.user.id },
        ctx,
      );
      return accepted(toView(instance));
    },
  }),
  defineHttp({
    name: "grafanaPassword",
    route: `${route}/password`,
    methods: ["POST"],
    caller: "verified",
    summary: "Set a new Grafana admin password and return it (the only time it is shown).",
    tags: ["grafana"],
    params,
    responses: { 200: { description: "The new password.", schema: passwordResponseSchema } },
    errors: [400, 401, 403, 404, 409, 502, 503],
    handler: async ({ services, req, params: p }) => {
      const session = await requireVerifiedUser(services, req);
      const password = await rotateGrafanaPassword(services, session.org, p.ref);
      return ok({ password });
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
    handler: async ({ services, req, ctx, params: p }) => {
      const session = await requireVerifiedUser(services, req);
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
