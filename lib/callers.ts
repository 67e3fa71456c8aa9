/**
 * Who may call an HTTP route, and what proving it yields. `defineHttp` resolves a route's caller
 * before anything else reads the request and hands the result to the handler, so no handler
 * checks a session, a verified user, an operator or a Stripe signature itself.
 *
 * Levels: `anyone` < `session` < `verified` (a session whose user proved who they are). `admin`
 * routes are reached only with the host's admin key (`authLevel: "admin"`, checked by the
 * Functions host) and name their operator in `X-Ops-Actor`. `stripe` routes carry a verified
 * `Stripe-Signature`.
 */
import type { HttpRequest } from "@azure/functions";
import type Stripe from "stripe";

import {
  requireSession,
  requireVerifiedUser,
  type Session,
  type SessionUser,
} from "./auth/session.js";
import { verifyWebhookRequest } from "./billing/webhook.js";
import { AppError } from "./errors.js";
import { hasControlCharacters } from "./http.js";
import type { Services } from "./services.js";

export type Caller = "anyone" | "session" | "verified" | "admin" | "stripe";

/** An operator, as they name themselves; the audit log records this. */
export interface Operator {
  actor: string;
}

/** What each caller level hands the handler. */
export interface ResolvedCaller {
  anyone: undefined;
  session: Session;
  verified: Session & { user: SessionUser };
  admin: Operator;
  stripe: Stripe.Event;
}

/** The operator's name from `X-Ops-Actor`, with the forwarded client address when there is one. */
function operatorOf(req: HttpRequest): Operator {
  const actor = req.headers.get("x-ops-actor")?.trim();
  if (!actor || actor.length > 100 || hasControlCharacters(actor)) {
    throw new AppError(
      400,
      "actor_required",
      "Name yourself in the X-Ops-Actor header (max 100 chars).",
    );
  }
  const from = req.headers.get("x-forwarded-for")?.split(",")[0]?.trim();
  return { actor: from ? `${actor} (${from})` : actor };
}

const resolvers: {
  [C in Caller]: (services: Services, req: HttpRequest) => Promise<ResolvedCaller[C]>;
} = {
  anyone: () => Promise.resolve(undefined),
  session: requireSession,
  verified: requireVerifiedUser,
  admin: (_services, req) => Promise.resolve(operatorOf(req)),
  stripe: verifyWebhookRequest,
};

/** Proves the request comes from `caller` (401/403/400 otherwise) and returns what it proved. */
export function resolveCaller<C extends Caller>(
  caller: C,
  services: Services,
  req: HttpRequest,
): Promise<ResolvedCaller[C]> {
  return resolvers[caller](services, req);
}
