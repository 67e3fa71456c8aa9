/**
 * A project's managed alerting: which default alerts are on and their parameters, who gets alert
 * e-mail, and each member's transactional e-mail preferences. Changes are applied to the running
 * Grafana host in the background; `configVersion` shows desired vs applied.
 */
import { z } from "zod";

import {
  getAlerts,
  getRecipients,
  patchAlerts,
  putRecipients,
  resolveCaller,
} from "../lib/alerts/service.js";
import { requireVerifiedUser } from "../lib/auth/session.js";
import { defineHttp, type FunctionDefinition } from "../lib/functions.js";
import { accepted, ok, projectRefSchema } from "../lib/http.js";
import {
  ALWAYS_SENT,
  PREFERENCE_KEYS,
  getPreferences,
  updatePreferences,
} from "../lib/notifications/preferences.js";

const params = z.object({ ref: projectRefSchema });
const userIdSchema = z.string().regex(/^[\w-]{1,128}$/, "must be a Supabase user id");

export const configVersionSchema = z
  .object({
    desired: z.number().int().describe("Goes up with every change of alerts or recipients."),
    applied: z
      .number()
      .int()
      .nullable()
      .describe("The version the Grafana host last confirmed; null before the first push."),
  })
  .describe("Desired vs applied version of the host's alerting configuration.");

export const lastConfigErrorSchema = z
  .string()
  .nullable()
  .describe("Why the last push to the Grafana host failed (it keeps the previous configuration).");

const alertParamSchema = z.object({
  name: z.string(),
  label: z.string(),
  unit: z.string(),
  value: z.number(),
  default: z.number(),
  min: z.number(),
  max: z.number(),
  step: z.number(),
});

export const alertsResponseSchema = z.object({
  ref: z.string(),
  alerts: z.array(
    z.object({
      id: z.string().describe("Stable id of a default alert definition."),
      title: z.string(),
      description: z.string(),
      enabled: z.boolean(),
      params: z.array(alertParamSchema),
    }),
  ),
  configVersion: configVersionSchema,
  lastConfigError: lastConfigErrorSchema,
  canEdit: z.boolean().describe("The caller is an Owner or Administrator of the organization."),
});

const alertsPatchSchema = z.object({
  alerts: z.record(
    z.string().max(64),
    z
      .object({
        enabled: z.boolean().optional(),
        params: z.record(z.string().max(64), z.number()).optional(),
      })
      .strict(),
  ),
});

const personSchema = z.object({
  userId: z.string(),
  email: z.string().nullable(),
  name: z.string(),
  role: z.string(),
});

export const recipientsResponseSchema = z.object({
  ref: z.string(),
  recipients: z.array(personSchema),
  members: z.array(
    personSchema.extend({
      verified: z
        .boolean()
        .describe("Has identified themselves by e-mail; only they can be recipients."),
      recipient: z.boolean(),
    }),
  ),
  configVersion: configVersionSchema,
  canEditOthers: z.boolean(),
  me: z.string().describe("The caller's user id."),
});

const preferencesSchema = z.object(
  Object.fromEntries(PREFERENCE_KEYS.map((k) => [k, z.boolean()])) as Record<
    (typeof PREFERENCE_KEYS)[number],
    z.ZodBoolean
  >,
);
export const notificationsResponseSchema = z.object({
  preferences: preferencesSchema,
  always: z.array(z.string()).describe("E-mails that are always sent."),
});
const notificationsPatchSchema = z.object({ preferences: preferencesSchema.partial().strict() });

const route = "projects/{ref}/grafana";

export const definitions: FunctionDefinition[] = [
  defineHttp({
    name: "alertsGet",
    route: `${route}/alerts`,
    methods: ["GET"],
    caller: "verified",
    summary: "The project's default alerts: which are on and their parameters.",
    tags: ["alerts"],
    params,
    responses: { 200: { description: "The alert settings.", schema: alertsResponseSchema } },
    errors: [400, 401, 403, 404, 502, 503],
    handler: async ({ services, req, params: p }) => {
      const session = await requireVerifiedUser(services, req);
      return ok(await getAlerts(services, session, p.ref));
    },
  }),
  defineHttp({
    name: "alertsPatch",
    route: `${route}/alerts`,
    methods: ["PATCH"],
    caller: "verified",
    summary:
      "Turn default alerts on or off and change their parameters (Owner or Administrator); applied to the Grafana host in the background.",
    tags: ["alerts"],
    params,
    body: alertsPatchSchema,
    responses: {
      202: {
        description: "The alert settings with the new desired version.",
        schema: alertsResponseSchema,
      },
    },
    errors: [400, 401, 403, 404, 502, 503],
    errorNotes: {
      400: "`bad_request`: an unknown alert id or parameter, or a value outside [min, max] (named in the message).",
      403: "`forbidden`: the caller is not an Owner or Administrator.",
    },
    handler: async ({ services, req, params: p, body }) => {
      const session = await requireVerifiedUser(services, req);
      return accepted(await patchAlerts(services, session, p.ref, body.alerts));
    },
  }),
  defineHttp({
    name: "recipientsGet",
    route: `${route}/recipients`,
    methods: ["GET"],
    caller: "verified",
    summary: "Who gets the project's alert e-mail, and the members who could.",
    tags: ["alerts"],
    params,
    responses: {
      200: { description: "Recipients and members.", schema: recipientsResponseSchema },
    },
    errors: [400, 401, 403, 404, 502, 503],
    handler: async ({ services, req, params: p }) => {
      const session = await requireVerifiedUser(services, req);
      return ok(await getRecipients(services, session, p.ref));
    },
  }),
  defineHttp({
    name: "recipientsPut",
    route: `${route}/recipients`,
    methods: ["PUT"],
    caller: "verified",
    summary:
      "Set who gets alert e-mail (the whole list). Owners and Administrators may set any verified members; anyone may add or remove themselves.",
    tags: ["alerts"],
    params,
    body: z.object({ userIds: z.array(userIdSchema).max(50) }),
    responses: {
      202: { description: "Recipients and members.", schema: recipientsResponseSchema },
    },
    errors: [400, 401, 403, 404, 502, 503],
    errorNotes: {
      400: "`bad_request`: an id that is not a verified member of the organization.",
      403: "`forbidden`: a non-admin changed someone other than themselves.",
    },
    handler: async ({ services, req, params: p, body }) => {
      const session = await requireVerifiedUser(services, req);
      return accepted(await putRecipients(services, session, p.ref, body.userIds));
    },
  }),
  defineHttp({
    name: "notificationsGet",
    route: "me/notifications",
    methods: ["GET"],
    caller: "verified",
    summary: "The caller's e-mail preferences (all on by default).",
    tags: ["me"],
    responses: {
      200: { description: "Preferences.", schema: notificationsResponseSchema },
    },
    errors: [401, 403, 502, 503],
    handler: async ({ services, req }) => {
      const session = await requireVerifiedUser(services, req);
      await resolveCaller(services, session);
      return ok({
        preferences: await getPreferences(services, session.org, session.user.id),
        always: [...ALWAYS_SENT],
      });
    },
  }),
  defineHttp({
    name: "notificationsPatch",
    route: "me/notifications",
    methods: ["PATCH"],
    caller: "verified",
    summary: "Change some of the caller's e-mail preferences.",
    tags: ["me"],
    body: notificationsPatchSchema,
    responses: {
      200: { description: "Preferences.", schema: notificationsResponseSchema },
    },
    errors: [400, 401, 403, 502, 503],
    handler: async ({ services, req, body }) => {
      const session = await requireVerifiedUser(services, req);
      await resolveCaller(services, session);
      return ok({
        preferences: await updatePreferences(
          services,
          session.org,
          session.user.id,
          body.preferences,
        ),
        always: [...ALWAYS_SENT],
      });
    },
  }),
];
