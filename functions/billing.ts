import { z } from "zod";

import { createCheckout, createPortal } from "../lib/billing/checkout.js";
import { billingSummarySchema, getBillingSummary } from "../lib/billing/summary.js";
import { defineHttp, type FunctionDefinition } from "../lib/functions.js";
import { ok } from "../lib/http.js";
import { RATE_LIMITS, enforceRateLimit } from "../lib/rate-limit.js";

/** Neither route takes input: the org is the session's, the customer is the org's. */
const noInput = z.strictObject({});

const checkoutResponseSchema = z.object({ url: z.string(), sessionId: z.string() });
const portalResponseSchema = z.object({ url: z.string() });

export const definitions: FunctionDefinition[] = [
  defineHttp({
    name: "billingGet",
    route: "billing",
    methods: ["GET"],
    caller: "session",
    summary: "The org's plan, subscription state, live instances by plan and next invoice.",
    tags: ["billing"],
    responses: { 200: { description: "Billing overview.", schema: billingSummarySchema } },
    errors: [401],
    handler: async ({ caller: session, ctx, services }) => {
      return ok(await getBillingSummary(services, session.org, ctx));
    },
  }),
  defineHttp({
    name: "billingCheckout",
    route: "billing/checkout",
    methods: ["POST"],
    caller: "verified",
    summary: "A Stripe Checkout page for the org's per-project subscription.",
    tags: ["billing"],
    body: noInput,
    responses: {
      200: { description: "Send the browser to `url`.", schema: checkoutResponseSchema },
    },
    errors: [400, 401, 403, 404, 409, 429, 502],
    handler: async ({ caller: session, ctx, services }) => {
      await enforceRateLimit(services, RATE_LIMITS.checkout, {
        session: session.id,
        org: session.org,
      });
      return ok(await createCheckout(services, session.org, session.user.id, ctx));
    },
  }),
  defineHttp({
    name: "billingPortal",
    route: "billing/portal",
    methods: ["POST"],
    caller: "verified",
    summary: "A Stripe customer portal page for the org's own billing account.",
    tags: ["billing"],
    body: noInput,
    responses: { 200: { description: "Send the browser to `url`.", schema: portalResponseSchema } },
    errors: [400, 401, 403, 404, 502],
    handler: async ({ caller: session, services }) => {
      return ok(await createPortal(services, session.org, session.user.id));
    },
  }),
];
