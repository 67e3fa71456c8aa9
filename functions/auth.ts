/** Connecting a Supabase organization (OAuth with PKCE) and ending a session. */
import type { HttpResponseInit } from "@azure/functions";
import { z } from "zod";

import { beginLogin, completeLogin, type LoginRedirect } from "../lib/auth/oauth.js";
import { clearedSessionCookie, endSession } from "../lib/auth/session.js";
import { defineHttp, type FunctionDefinition } from "../lib/functions.js";
import { noContent, redirect } from "../lib/http.js";

const toRedirect = (r: LoginRedirect): HttpResponseInit => ({
  ...redirect(r.location),
  cookies: r.cookies,
});

export const definitions: FunctionDefinition[] = [
  defineHttp({
    name: "authLogin",
    route: "auth/login",
    methods: ["GET"],
    caller: "anyone",
    summary:
      "Start connecting a Supabase organization: redirect to Supabase's consent screen (state + PKCE S256).",
    tags: ["auth"],
    query: z.object({
      returnTo: z
        .string()
        .max(2048)
        .optional()
        .describe("A same-origin path to come back to, e.g. /dashboard"),
    }),
    responses: {
      302: {
        description:
          "To Supabase's authorize endpoint; to `/?connectError=invalid_return_to` when returnTo is not a same-origin path.",
        contentType: "text/plain",
      },
    },
    errors: [400],
    handler: async ({ services, query }) => toRedirect(await beginLogin(services, query.returnTo)),
  }),

  defineHttp({
    name: "authCallback",
    route: "auth/callback",
    methods: ["GET"],
    caller: "anyone",
    summary:
      "OAuth callback: check state, exchange the code, record the installation, start a session.",
    tags: ["auth"],
    query: z.object({
      code: z.string().max(2048).optional(),
      state: z.string().max(2048).optional(),
      error: z.string().max(256).optional(),
      error_description: z.string().max(2048).optional(),
    }),
    responses: {
      302: {
        description:
          "To returnTo with the session cookie; on denial, a bad/reused/expired state or a failed exchange to `/?connectError=<code>` with nothing stored.",
        contentType: "text/plain",
      },
    },
    errors: [400],
    handler: async ({ services, req, query }) =>
      toRedirect(await completeLogin(services, req, query)),
  }),

  defineHttp({
    name: "authLogout",
    route: "auth/logout",
    methods: ["POST"],
    caller: "session",
    summary: "End the session (server-side) and clear the cookie.",
    tags: ["auth"],
    responses: { 204: { description: "Signed out." } },
    errors: [401, 403],
    handler: async ({ services, caller: session }) => {
      await endSession(services, session.id);
      return { ...noContent(), cookies: [clearedSessionCookie()] };
    },
  }),
];
