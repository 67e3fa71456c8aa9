/** Who is connected: the org, the members to pick from, and e-mail self-identification. */
import { z } from "zod";

import {
  confirmVerificationCode,
  listMemberViews,
  sendVerificationCode,
} from "../lib/auth/verification.js";
import { defineHttp, type FunctionDefinition } from "../lib/functions.js";
import { ok } from "../lib/http.js";
import { getInstallation } from "../lib/installations.js";
import { RATE_LIMITS, enforceRateLimit } from "../lib/rate-limit.js";

const userIdSchema = z.string().regex(/^[\w-]{1,128}$/, "must be a Supabase user id");

const userSchema = z.object({
  id: z.string(),
  name: z.string(),
  email: z.string().nullable().describe("masked, e.g. j***@example.com"),
  role: z.string(),
});
const meSchema = z.object({
  org: z.object({ slug: z.string(), name: z.string() }),
  user: userSchema.nullable(),
});
const memberSchema = z.object({
  userId: z.string(),
  name: z.string(),
  role: z.string(),
  email: z.string().nullable().describe("masked, e.g. j***@example.com"),
  hasEmail: z.boolean(),
});
const codeSentSchema = z.object({
  sentTo: z.string(),
  expiresAt: z.string(),
  resendAfterSeconds: z.number(),
});

export const definitions: FunctionDefinition[] = [
  defineHttp({
    name: "me",
    route: "me",
    methods: ["GET"],
    caller: "session",
    summary: "The connected organization and, once verified, the member using this session.",
    tags: ["me"],
    responses: { 200: { description: "The session's org and user.", schema: meSchema } },
    errors: [401],
    handler: async ({ services, caller: session }) => {
      const installation = await getInstallation(services, session.org);
      const u = session.user;
      return ok({
        org: { slug: session.org, name: installation?.name ?? session.org },
        user: u ? { id: u.id, name: u.name, email: u.emailMasked ?? null, role: u.role } : null,
      });
    },
  }),

  defineHttp({
    name: "orgMembers",
    route: "org/members",
    methods: ["GET"],
    caller: "session",
    summary: "The organization's members, to pick oneself from (e-mails masked).",
    tags: ["me"],
    responses: { 200: { description: "Members.", schema: z.array(memberSchema) } },
    errors: [401, 502, 503],
    handler: async ({ services, caller: session }) => {
      return ok(await listMemberViews(services, session.org));
    },
  }),

  defineHttp({
    name: "meVerificationSend",
    route: "me/verification",
    methods: ["POST"],
    caller: "session",
    summary: "E-mail a 6-digit code to that member's Supabase e-mail address.",
    tags: ["me"],
    body: z.object({ userId: userIdSchema }),
    responses: { 200: { description: "The code was sent.", schema: codeSentSchema } },
    errors: [400, 401, 403, 404, 409, 429, 502, 503],
    handler: async ({ services, caller: session, body }) => {
      await enforceRateLimit(services, RATE_LIMITS.verification, {
        session: session.id,
        org: session.org,
      });
      return ok(await sendVerificationCode(services, session, body.userId));
    },
  }),

  defineHttp({
    name: "meVerificationConfirm",
    route: "me/verification/confirm",
    methods: ["POST"],
    caller: "session",
    summary: "Check the code and bind the session to that member.",
    tags: ["me"],
    body: z.object({ userId: userIdSchema, code: z.string().regex(/^\d{6}$/, "must be 6 digits") }),
    responses: { 200: { description: "Verified.", schema: z.object({ user: userSchema }) } },
    errors: [400, 401, 403, 404, 429, 502, 503],
    handler: async ({ services, caller: session, body }) => {
      const u = await confirmVerificationCode(services, session, body.userId, body.code);
      return ok({ user: { id: u.id, name: u.name, email: u.emailMasked ?? null, role: u.role } });
    },
  }),
];
