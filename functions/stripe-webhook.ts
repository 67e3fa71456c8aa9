import { z } from "zod";

import { handleStripeEvent } from "../lib/billing/webhook.js";
import { defineHttp, type FunctionDefinition } from "../lib/functions.js";
import { ok } from "../lib/http.js";
import { logEvent } from "../lib/telemetry.js";

/** For the API description only: the body is read raw, verified, then parsed by the SDK. */
const eventDoc = z.looseObject({ id: z.string(), type: z.string() });

const webhookResponseSchema = z.object({
  received: z.literal(true),
  status: z.enum(["processed", "duplicate", "ignored"]),
});

export const definitions: FunctionDefinition[] = [
  defineHttp({
    name: "stripeWebhook",
    route: "webhooks/stripe",
    methods: ["POST"],
    caller: "stripe",
    checkOrigin: false,
    summary:
      "Stripe events: signature-verified, deduplicated by event id, handled by re-reading Stripe.",
    tags: ["billing"],
    body: eventDoc,
    responses: {
      200: {
        description: "Handled now, earlier (duplicate), or not of interest.",
        schema: webhookResponseSchema,
      },
    },
    errors: [400, 409, 413, 503],
    handler: async ({ ctx, services, caller: event }) => {
      const started = performance.now();
      const outcome = await handleStripeEvent(services, event, ctx);
      logEvent(ctx, "info", "stripe webhook", {
        ...outcome,
        event: "webhook.outcome",
        durationMs: Math.round(performance.now() - started),
      });
      return ok({ received: true, status: outcome.status });
    },
  }),
];
