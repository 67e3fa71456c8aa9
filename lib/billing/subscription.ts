/**
 * The org's one Stripe subscription: reading it back from Stripe (webhooks never trust the event
 * payload, they re-read), folding it into the installation row, and keeping its quantity equal to
 * the org's live paid instances.
 *
 * Quantity 0: the price is licensed (per unit), and Stripe accepts quantity 0 on such an item, so
 * an org whose last paid instance goes keeps its subscription at quantity 0 (billed nothing, no
 * new Checkout needed when it provisions again). Checked against the simulator, which enforces the
 * same rule (quantity >= 0, at least one item).
 */
import type Stripe from "stripe";

import { AppError } from "../errors.js";
import { listInstances } from "../instances/store.js";
import type { Services } from "../services.js";
import { isConflict, retryOnConflict } from "../storage/tables.js";
import { mergeBilling, readBilling, type BillingAccount, type BillingPatch } from "./account.js";
import { countLive, isLiveSubscription } from "./rules.js";
import { stripeCode, stripeFor, type StripeClient } from "./stripe.js";

/** What billing keeps of a subscription read from Stripe. */
export interface SubscriptionSnapshot {
  id: string;
  status: string;
  customerId: string;
  /** `metadata.org`, set at Checkout. */
  org?: string | undefined;
  /** Unix seconds. */
  created: number;
  itemId?: string | undefined;
  quantity: number;
  currentPeriodEnd?: Date | undefined;
  cancelAtPeriodEnd: boolean;
  /** When the latest invoice, still open, first failed: the start of the current delinquency. */
  delinquentSince?: Date | undefined;
}

const fromUnix = (s: number | null | undefined): Date | undefined =>
  typeof s === "number" && s > 0 ? new Date(s * 1000) : undefined;

function pickItem(sub: Stripe.Subscription, priceId: string): Stripe.SubscriptionItem | undefined {
  return sub.items.data.find((i) => i.price.id === priceId) ?? sub.items.data[0];
}

export function snapshotOf(sub: Stripe.Subscription, priceId: string): SubscriptionSnapshot {
  const item = pickItem(sub, priceId);
  const legacyEnd = (sub as unknown as { current_period_end?: number }).current_period_end;
  const invoice =
    typeof sub.latest_invoice === "object" && sub.latest_invoice !== null
      ? sub.latest_invoice
      : undefined;
  const delinquentSince =
    invoice && invoice.status === "open"
      ? fromUnix(invoice.status_transitions.finalized_at ?? invoice.created)
      : undefined;
  return {
    id: sub.id,
    status: sub.status,
    customerId: typeof sub.customer === "string" ? sub.customer : sub.customer.id,
    org: sub.metadata.org,
    created: sub.created,
    itemId: item?.id,
    quantity: item?.quantity ?? 0,
    currentPeriodEnd: fromUnix(item?.current_period_end ?? legacyEnd),
    cancelAtPeriodEnd: sub.cancel_at_period_end,
    delinquentSince,
  };
}

/** The subscription as Stripe has it now, or undefined when Stripe does not know it. */
export async function readSubscription(
  services: Services,
  stripe: StripeClient,
  id: string,
): Promise<SubscriptionSnapshot | undefined> {
  try {
    const sub = await stripe.subscriptions.retrieve(id, { expand: ["latest_invoice"] });
    return snapshotOf(sub, services.config.STRIPE_PRICE_ID);
  } catch (err) {
    if (stripeCode(err) === "resource_missing") return undefined;
    throw err;
  }
}

/**
 * Which of two subscriptions of one org is "the" subscription: a live one over an ended one;
 * between two of the same kind, the newer. Order-independent: it depends only on Stripe's state.
 */
export function prefersIncoming(
  stored: Pick<SubscriptionSnapshot, "id" | "status" | "created">,
  incoming: Pick<SubscriptionSnapshot, "id" | "status" | "created">,
): boolean {
  if (stored.id === incoming.id) return true;
  const liveStored = isLiveSubscription(stored.status);
  const liveIncoming = isLiveSubscription(incoming.status);
  if (liveStored !== liveIncoming) return liveIncoming;
  return (
    incoming.created > stored.created ||
    (incoming.created === stored.created && incoming.id > stored.id)
  );
}

/** The installation fields that mirror a subscription snapshot (pure). */
export function billingPatchFor(
  current: BillingAccount,
  snap: SubscriptionSnapshot,
  now: Date,
): BillingPatch {
  const patch: BillingPatch = {
    stripeSubscriptionId: snap.id,
    subscriptionStatus: snap.status,
    subscriptionQuantity: snap.quantity,
    currentPeriodEnd: snap.currentPeriodEnd ?? null,
  };
  if (!current.stripeCustomerId) patch.stripeCustomerId = snap.customerId;
  if (snap.status === "past_due" || snap.status === "unpaid") {
    patch.paymentFailedAt = snap.delinquentSince ?? current.paymentFailedAt ?? now;
  } else if ((snap.status === "active" || snap.status === "trialing") && current.paymentFailedAt) {
    patch.paymentFailedAt = null;
  }
  return patch;
}

const sameDate = (a: Date | undefined, b: Date | null | undefined) =>
  (a?.getTime() ?? null) === (b ? b.getTime() : null);

function changes(current: BillingAccount, patch: BillingPatch): boolean {
  if (patch.stripeCustomerId !== undefined && patch.stripeCustomerId !== current.stripeCustomerId)
    return true;
  if (
    patch.stripeSubscriptionId !== undefined &&
    patch.stripeSubscriptionId !== current.stripeSubscriptionId
  )
    return true;
  if (
    patch.subscriptionStatus !== undefined &&
    patch.subscriptionStatus !== current.subscriptionStatus
  )
    return true;
  if (
    patch.subscriptionQuantity !== undefined &&
    patch.subscriptionQuantity !== current.subscriptionQuantity
  )
    return true;
  if (
    patch.currentPeriodEnd !== undefined &&
    !sameDate(current.currentPeriodEnd, patch.currentPeriodEnd)
  )
    return true;
  if (
    patch.paymentFailedAt !== undefined &&
    !sameDate(current.paymentFailedAt, patch.paymentFailedAt)
  )
    return true;
  return false;
}

export type ApplyOutcome =
  "updated" | "unchanged" | "no_installation" | "foreign_customer" | "kept_other";

/**
 * Folds a subscription (as read from Stripe) into the org's installation row, with an
 * etag-conditional Merge; a lost race re-reads and decides again.
 */
export async function applySubscription(
  services: Services,
  org: string,
  snap: SubscriptionSnapshot,
): Promise<ApplyOutcome> {
  return retryOnConflict<ApplyOutcome>(
    async () => {
      const account = await readBilling(services, org);
      if (!account) return "no_installation";
      if (account.stripeCustomerId && account.stripeCustomerId !== snap.customerId)
        return "foreign_customer";
      if (account.stripeSubscriptionId && account.stripeSubscriptionId !== snap.id) {
        const stored = await readSubscription(
          services,
          await stripeFor(services),
          account.stripeSubscriptionId,
        );
        if (stored && !prefersIncoming(stored, snap)) return "kept_other";
      }
      const patch = billingPatchFor(account, snap, services.clock.now());
      if (!changes(account, patch)) return "unchanged";
      await mergeBilling(services, org, patch, account.etag);
      return "updated";
    },
    {
      exhausted: () =>
        new AppError(
          503,
          "unavailable",
          "The subscription state could not be saved; it will be retried.",
        ),
    },
  );
}

export interface SyncResult {
  /** Live paid instances, which the subscription quantity now equals (unless skipped). */
  quantity: number;
  changed: boolean;
  skipped?: "no_installation" | "no_subscription" | "subscription_ended";
}

async function livePaid(services: Services, org: string): Promise<number> {
  return countLive(await listInstances(services, org)).paid;
}

/**
 * Makes the subscription's quantity equal to the org's live paid instances (state not Deleted,
 * Failed or Deleting), with proration. Stripe is written only when its quantity differs, with an
 * idempotency key made of org, subscription, target quantity and a version counter on the
 * installation (claimed with an etag before the write, so two writers never share a key and a
 * quantity that goes 1 → 2 → 1 → 2 is written every time). After writing, it counts again and
 * repeats if an instance came or went meanwhile, so concurrent callers converge.
 * Provisioning and deprovisioning call it; the reconciler may call it to repair drift.
 */
export async function syncSubscriptionQuantity(
  services: Services,
  org: string,
): Promise<SyncResult> {
  let changed = false;
  for (let attempt = 0; attempt < 8; attempt++) {
    const account = await readBilling(services, org);
    const target = await livePaid(services, org);
    if (!account) return { quantity: target, changed, skipped: "no_installation" };
    if (!account.stripeSubscriptionId)
      return { quantity: target, changed, skipped: "no_subscription" };
    const stripe = await stripeFor(services);
    const sub = await readSubscription(services, stripe, account.stripeSubscriptionId);
    if (!sub || !isLiveSubscription(sub.status) || !sub.itemId) {
      return { quantity: target, changed, skipped: "subscription_ended" };
    }
    if (sub.quantity === target) {
      if (account.subscriptionQuantity !== target) {
        await mergeBilling(services, org, { subscriptionQuantity: target });
      }
      if ((await livePaid(services, org)) === target) return { quantity: target, changed };
      continue;
    }
    const version = (account.subscriptionSyncVersion ?? 0) + 1;
    try {
      await mergeBilling(services, org, { subscriptionSyncVersion: version }, account.etag);
    } catch (err) {
      if (isConflict(err)) continue;
      throw err;
    }
    await stripe.subscriptions.update(
      sub.id,
      { items: [{ id: sub.itemId, quantity: target }], proration_behavior: "create_prorations" },
      { idempotencyKey: `quantity:${org}:${sub.id}:${target}:v${version}` },
    );
    changed = true;
    await mergeBilling(services, org, { subscriptionQuantity: target });
    if ((await livePaid(services, org)) === target) return { quantity: target, changed };
  }
  throw new AppError(
    503,
    "unavailable",
    "The subscription quantity kept changing; it will be synced again.",
  );
}
