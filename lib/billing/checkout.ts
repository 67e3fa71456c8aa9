/**
 * Starting a subscription (Stripe Checkout) and managing it (Stripe customer portal).
 *
 * One Stripe customer per org, created on the first Checkout with an idempotency key per org and
 * remembered on the installation; every later Checkout and portal session reuses it. Its e-mail
 * (where payment-failure mail goes) is the verified member's Supabase e-mail when it can be read,
 * else the one the payer types at Checkout (kept by the webhook). The portal
 * is only ever opened for the customer of the caller's own org: the route takes no customer or
 * subscription id from the client.
 */
import { createHash, randomUUID } from "node:crypto";

import type { InvocationContext } from "@azure/functions";

import { AppError, notFound } from "../errors.js";
import { listInstances } from "../instances/store.js";
import type { Services } from "../services.js";
import { retryOnConflict } from "../storage/tables.js";
import { mergeBilling, readBilling, type BillingAccount } from "./account.js";
import { supabaseFor } from "../supabase/client.js";
import { countLive, isLiveSubscription } from "./rules.js";
import { callStripe, stripeFor, type StripeClient } from "./stripe.js";
import { applySubscription, snapshotOf } from "./subscription.js";

const CHECKOUT_KEY_WINDOW_MS = 10 * 60_000;
const PORTAL_KEY_WINDOW_MS = 60_000;

async function requireAccount(services: Services, org: string): Promise<BillingAccount> {
  const account = await readBilling(services, org);
  if (!account) throw notFound("This organization is not connected; connect it again.");
  return account;
}

/** The org's Stripe customer id, creating the customer the first time. */
async function ensureCustomer(services: Services, org: string): Promise<string> {
  // A lost race re-reads: the row may hold a customer by now.
  return retryOnConflict(
    async () => {
      const account = await requireAccount(services, org);
      if (account.stripeCustomerId) return account.stripeCustomerId;
      const stripe = await stripeFor(services);
      // The same key (and the same parameters) returns the same customer for 24 hours, so two
      // concurrent first Checkouts share one customer.
      const customer = await callStripe("create the billing account", () =>
        stripe.customers.create(
          { name: account.name ?? org, metadata: { org } },
          { idempotencyKey: `customer:${org}` },
        ),
      );
      await mergeBilling(services, org, { stripeCustomerId: customer.id }, account.etag);
      return customer.id;
    },
    {
      exhausted: () =>
        new AppError(503, "unavailable", "The billing account could not be saved; try again."),
    },
  );
}

/** Sets the customer's e-mail when it has none (never overwrites one the payer chose). */
export async function setCustomerEmailIfMissing(
  stripe: StripeClient,
  customerId: string,
  email: string,
): Promise<void> {
  const customer = await stripe.customers.retrieve(customerId);
  if (customer.deleted || customer.email) return;
  const digest = createHash("sha256").update(email).digest("hex").slice(0, 16);
  await stripe.customers.update(
    customerId,
    { email },
    { idempotencyKey: `customer-email:${customerId}:${digest}` },
  );
}

/** The verified member's Supabase e-mail, when Supabase tells us now (best effort). */
async function memberEmail(
  services: Services,
  org: string,
  userId: string,
  ctx?: InvocationContext,
): Promise<string | undefined> {
  try {
    const members = await supabaseFor(services, org).listMembers();
    return members.find((m) => m.userId === userId)?.email ?? undefined;
  } catch {
    ctx?.warn("billing: member e-mail unavailable; Checkout will ask the payer for one");
    return undefined;
  }
}

const alreadySubscribed = (status: string) =>
  new AppError(
    409,
    "already_subscribed",
    `This organization already has a subscription (${status}); manage it in the billing portal.`,
  );

export interface CheckoutResult {
  url: string;
  sessionId: string;
}

/**
 * A Stripe Checkout session for the org's subscription (mode subscription, the one price,
 * quantity = live paid instances, at least 1). Refused with 409 when the org already has a
 * subscription that is not over: that one is managed in the portal.
 */
export async function createCheckout(
  services: Services,
  org: string,
  userId: string,
  ctx?: InvocationContext,
): Promise<CheckoutResult> {
  const account = await requireAccount(services, org);
  if (account.stripeSubscriptionId && isLiveSubscription(account.subscriptionStatus)) {
    throw alreadySubscribed(account.subscriptionStatus ?? "unknown");
  }
  const customer = await ensureCustomer(services, org);
  const stripe = await stripeFor(services);
  const email = await memberEmail(services, org, userId, ctx);
  if (email)
    await callStripe("update the billing account", () =>
      setCustomerEmailIfMissing(stripe, customer, email),
    );
  // A subscription Stripe has but whose webhooks have not arrived yet (or were lost): record it
  // instead of selling a second one.
  const existing = await callStripe("read the subscription", () =>
    stripe.subscriptions.list({ customer, status: "all" }),
  );
  const live = existing.data.find((sub) => isLiveSubscription(sub.status));
  if (live) {
    await applySubscription(services, org, snapshotOf(live, services.config.STRIPE_PRICE_ID));
    throw alreadySubscribed(live.status);
  }
  const quantity = Math.max(1, countLive(await listInstances(services, org)).paid);
  const base = services.config.PUBLIC_BASE_URL;
  const bucket = Math.floor(services.clock.now().getTime() / CHECKOUT_KEY_WINDOW_MS);
  const key = `checkout:${org}:${userId}:${quantity}:${bucket}`;
  const create = (idempotencyKey: string) =>
    callStripe("start the checkout", () =>
      stripe.checkout.sessions.create(
        {
          mode: "subscription",
          customer,
          client_reference_id: org,
          metadata: { org },
          subscription_data: { metadata: { org } },
          line_items: [{ price: services.config.STRIPE_PRICE_ID, quantity }],
          allow_promotion_codes: true,
          success_url: `${base}/billing?checkout=success&session_id={CHECKOUT_SESSION_ID}`,
          cancel_url: `${base}/billing?checkout=canceled`,
        },
        { idempotencyKey },
      ),
    );
  let session = await create(key);
  // A replayed key returns the session of a moment ago: completed (paid just now), or expired.
  if (session.status === "complete") throw alreadySubscribed("being set up");
  if (session.status !== "open" || !session.url) session = await create(`${key}:${randomUUID()}`);
  if (!session.url)
    throw new AppError(502, "upstream_error", "Stripe did not return a Checkout page.");
  return { url: session.url, sessionId: session.id };
}

/** A customer-portal session for the org's own Stripe customer. */
export async function createPortal(
  services: Services,
  org: string,
  userId: string,
): Promise<{ url: string }> {
  const account = await requireAccount(services, org);
  if (!account.stripeCustomerId) {
    throw new AppError(
      404,
      "no_billing_account",
      "This organization has no billing account yet; subscribe first.",
    );
  }
  const customer = account.stripeCustomerId;
  const stripe = await stripeFor(services);
  const bucket = Math.floor(services.clock.now().getTime() / PORTAL_KEY_WINDOW_MS);
  const portal = await callStripe("open the billing portal", () =>
    stripe.billingPortal.sessions.create(
      { customer, return_url: `${services.config.PUBLIC_BASE_URL}/billing` },
      { idempotencyKey: `portal:${org}:${userId}:${bucket}` },
    ),
  );
  return { url: portal.url };
}
