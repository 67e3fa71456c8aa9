/**
 * Stripe webhooks: signature verification on the raw body, deduplication by event id, and
 * order-independent handling.
 *
 * - A bad signature or a timestamp older than 5 minutes is a 400 and stores nothing.
 * - `stripeEvents` (`events.ts`) holds one row per event: created as "processing" with a short
 *   lease, marked "done" only after every effect. A done event answers 200 with no effect; one
 *   whose lease is live answers 409 (Stripe delivers it again later); one that failed or whose
 *   lease ran out (the process died) is taken over with an etag and processed again.
 * - Effects are idempotent and never trust the event payload: the subscription (and, for payment
 *   failures, the invoice) is read again from Stripe, so duplicates, reordering and replays all
 *   converge on Stripe's current state.
 */
import type { HttpRequest, InvocationContext } from "@azure/functions";
import type Stripe from "stripe";

import { AppError, statusOf } from "../errors.js";
import { notifyAddress } from "../notifications/index.js";
import type { Services } from "../services.js";
import { findOrgByCustomer, readBilling } from "./account.js";
import { claimEvent, finishEvent, releaseEvent, type WebhookStatus } from "./events.js";
import { setCustomerEmailIfMissing } from "./checkout.js";
import { graceEndsAt } from "./rules.js";
import { stripeFor, type StripeClient } from "./stripe.js";
import {
  applySubscription,
  readSubscription,
  snapshotOf,
  type ApplyOutcome,
  type SubscriptionSnapshot,
} from "./subscription.js";

/** Stripe's own default: signatures older than this are refused (replays). */
const WEBHOOK_TOLERANCE_SECONDS = 300;

export interface WebhookOutcome {
  eventId: string;
  type: string;
  status: WebhookStatus;
}

const EVENT_ID = /^evt_[A-Za-z0-9_]{1,200}$/;

/** Stripe events are far below this; anything bigger is not from Stripe. */
const MAX_EVENT_BYTES = 256 * 1024;

/** Reads a webhook request's raw body (413 when too large) and verifies it (`verifyWebhook`). */
export async function verifyWebhookRequest(
  services: Services,
  req: HttpRequest,
): Promise<Stripe.Event> {
  const payload = await req.text();
  if (Buffer.byteLength(payload) > MAX_EVENT_BYTES) {
    throw new AppError(413, "payload_too_large", "The request body is too large.");
  }
  return verifyWebhook(services, payload, req.headers.get("stripe-signature"));
}

/** Verifies the `Stripe-Signature` of the raw body and returns the event. 400 otherwise. */
async function verifyWebhook(
  services: Services,
  payload: string,
  signature: string | null,
): Promise<Stripe.Event> {
  if (!signature) {
    throw new AppError(400, "invalid_signature", "The Stripe-Signature header is missing.");
  }
  const stripe = await stripeFor(services);
  let event: Stripe.Event;
  try {
    event = stripe.webhooks.constructEvent(
      payload,
      signature,
      services.config.STRIPE_WEBHOOK_SECRET,
      WEBHOOK_TOLERANCE_SECONDS,
      undefined,
      services.clock.now().getTime(),
    );
  } catch {
    throw new AppError(
      400,
      "invalid_signature",
      "The webhook signature is invalid or its timestamp is too old.",
    );
  }
  // Signed but not an event (a JSON null, an array, no data.object): refuse it clearly.
  const shape = event as unknown as {
    id?: unknown;
    type?: unknown;
    data?: { object?: unknown } | null;
  } | null;
  if (
    typeof shape !== "object" ||
    shape === null ||
    Array.isArray(shape) ||
    typeof shape.id !== "string" ||
    !EVENT_ID.test(shape.id) ||
    typeof shape.type !== "string"
  ) {
    throw new AppError(400, "bad_request", "The event has no valid id or type.");
  }
  const object = shape.data?.object;
  if (typeof object !== "object" || object === null || Array.isArray(object)) {
    throw new AppError(400, "bad_request", "The event has no data.object.");
  }
  return event;
}

/** Deduplicates and handles one verified event. */
export async function handleStripeEvent(
  services: Services,
  event: Stripe.Event,
  ctx?: InvocationContext,
): Promise<WebhookOutcome> {
  const base = { eventId: event.id, type: event.type };
  const claim = await claimEvent(services, event);
  if (claim.kind === "done") return { ...base, status: "duplicate" };
  if (claim.kind === "busy") {
    throw new AppError(
      409,
      "event_in_progress",
      "This event is being processed; deliver it again later.",
    );
  }
  let status: WebhookStatus;
  try {
    status = await processEvent(services, event, ctx);
  } catch (err) {
    await releaseEvent(services, event.id, claim.etag);
    if (err instanceof AppError) throw err;
    throw new AppError(
      503,
      "unavailable",
      "The event could not be processed now; deliver it again later.",
      undefined,
      {
        cause: err,
      },
    );
  }
  await finishEvent(services, event.id, status);
  return { ...base, status };
}

const idOf = (v: string | { id: string } | null | undefined): string | undefined =>
  typeof v === "string" ? v : (v?.id ?? undefined);

async function orgFor(
  services: Services,
  snap: SubscriptionSnapshot,
  hint?: string | null,
): Promise<string | undefined> {
  return snap.org ?? hint ?? (await findOrgByCustomer(services, snap.customerId));
}

async function applyTo(
  services: Services,
  snap: SubscriptionSnapshot,
  hint: string | null | undefined,
  ctx?: InvocationContext,
): Promise<{ org?: string; outcome: ApplyOutcome | "unknown_org" }> {
  const org = await orgFor(services, snap, hint);
  if (!org) return { outcome: "unknown_org" };
  const outcome = await applySubscription(services, org, snap);
  if (outcome === "foreign_customer" || outcome === "no_installation") {
    ctx?.warn("stripe webhook: subscription not applied", { subscription: snap.id, outcome });
  }
  return { org, outcome };
}

function invoiceSubscriptionId(invoice: Stripe.Invoice): string | undefined {
  const fromParent = invoice.parent?.subscription_details?.subscription;
  const legacy = (invoice as unknown as { subscription?: string | { id: string } | null })
    .subscription;
  return idOf(fromParent ?? legacy ?? undefined);
}

async function processEvent(
  services: Services,
  event: Stripe.Event,
  ctx?: InvocationContext,
): Promise<WebhookStatus> {
  const stripe = await stripeFor(services);
  switch (event.type) {
    case "checkout.session.completed": {
      const session = event.data.object;
      const subId = idOf(session.subscription);
      if (session.mode !== "subscription" || !subId) return "ignored";
      const snap = await readSubscription(services, stripe, subId);
      if (!snap) return "ignored";
      const { outcome } = await applyTo(
        services,
        snap,
        session.client_reference_id ?? session.metadata?.org,
        ctx,
      );
      // Keep the e-mail the payer gave at Checkout, for payment-failure mail.
      const email = session.customer_details?.email;
      if (email && (outcome === "updated" || outcome === "unchanged")) {
        await setCustomerEmailIfMissing(stripe, snap.customerId, email);
      }
      return outcome === "updated" || outcome === "unchanged" ? "processed" : "ignored";
    }
    case "customer.subscription.created":
    case "customer.subscription.updated":
    case "customer.subscription.deleted": {
      const payload = event.data.object;
      let snap = await readSubscription(services, stripe, payload.id);
      // A deleted subscription Stripe no longer returns is over: take the event's word for it.
      if (!snap && event.type === "customer.subscription.deleted") {
        snap = { ...snapshotOf(payload, services.config.STRIPE_PRICE_ID), status: "canceled" };
      }
      if (!snap) return "ignored";
      const { outcome } = await applyTo(services, snap, undefined, ctx);
      return outcome === "updated" || outcome === "unchanged" ? "processed" : "ignored";
    }
    case "invoice.paid":
    case "invoice.payment_failed": {
      const invoice = event.data.object;
      const subId = invoiceSubscriptionId(invoice);
      if (!subId) return "ignored";
      const snap = await readSubscription(services, stripe, subId);
      if (!snap) return "ignored";
      const { org, outcome } = await applyTo(services, snap, undefined, ctx);
      if (!org || (outcome !== "updated" && outcome !== "unchanged")) return "ignored";
      if (event.type === "invoice.payment_failed" && invoice.id) {
        await notifyPaymentFailed(services, stripe, org, invoice.id, ctx);
      }
      return "processed";
    }
    default:
      return "ignored";
  }
}

function formatAmount(cents: number, currency: string): string {
  return `${(cents / 100).toFixed(2)} ${currency.toUpperCase()}`;
}

/**
 * E-mails the payer that a payment failed: once per invoice (Loops idempotency key), only while
 * the invoice is still unpaid (a late event for an invoice paid since sends nothing).
 */
async function notifyPaymentFailed(
  services: Services,
  stripe: StripeClient,
  org: string,
  invoiceId: string,
  ctx?: InvocationContext,
): Promise<void> {
  const invoice = await stripe.invoices.retrieve(invoiceId);
  if (invoice.status !== "open") return;
  let email = invoice.customer_email ?? undefined;
  const customerId = idOf(invoice.customer);
  if (!email && customerId) {
    const customer = await stripe.customers.retrieve(customerId);
    email = customer.deleted ? undefined : (customer.email ?? undefined);
  }
  if (!email) {
    ctx?.warn("stripe webhook: payment failed but the customer has no e-mail", {
      invoice: invoice.id,
    });
    return;
  }
  const account = await readBilling(services, org);
  const grace = account ? graceEndsAt(account, services.config.BILLING_GRACE_HOURS) : undefined;
  try {
    await notifyAddress(services, {
      org,
      email,
      template: "paymentFailed",
      data: {
        org,
        orgName: account?.name ?? org,
        amountDue: formatAmount(invoice.amount_due, invoice.currency),
        invoiceUrl: invoice.hosted_invoice_url ?? "",
        graceEndsAt: grace?.toISOString() ?? "",
        billingUrl: `${services.config.PUBLIC_BASE_URL}/billing`,
      },
      idempotencyKey: `payment-failed:${invoice.id}`,
    });
  } catch (err) {
    // 409: this invoice's mail was already accepted (a redelivery after a crash).
    if (statusOf(err) !== 409) throw err;
  }
}
