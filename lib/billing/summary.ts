/**
 * What the billing page shows: the subscription as last reported by Stripe's webhooks, the org's
 * live instances by plan (counted from the instances table, never stubbed), and the next invoice
 * (a Stripe preview; left out when Stripe cannot tell right now rather than failing the page).
 */
import type { InvocationContext } from "@azure/functions";
import { z } from "zod";

import { listInstances } from "../instances/store.js";
import type { Services } from "../services.js";
import { readBilling } from "./account.js";
import { countLive, graceEndsAt, isLiveSubscription } from "./rules.js";
import { stripeCode, stripeFor } from "./stripe.js";

export const billingSummarySchema = z.object({
  plan: z.enum(["none", "subscribed"]),
  subscription: z
    .object({
      status: z.string(),
      quantity: z.number().int(),
      currentPeriodEnd: z.string().nullable(),
    })
    .nullable(),
  instances: z.object({ paid: z.number().int(), trial: z.number().int(), free: z.number().int() }),
  freeInstances: z.number().int(),
  nextInvoice: z
    .object({ date: z.string(), amountDue: z.number().int(), currency: z.string() })
    .nullable(),
  graceEndsAt: z.string().nullable(),
});
export type BillingSummary = z.infer<typeof billingSummarySchema>;

type NextInvoice = NonNullable<BillingSummary["nextInvoice"]>;

async function nextInvoice(
  services: Services,
  subscriptionId: string,
  ctx?: InvocationContext,
): Promise<NextInvoice | null> {
  try {
    const stripe = await stripeFor(services);
    const preview = await stripe.invoices.createPreview({ subscription: subscriptionId });
    const at = preview.next_payment_attempt ?? preview.period_end;
    return {
      date: new Date(at * 1000).toISOString(),
      amountDue: preview.amount_due,
      currency: preview.currency,
    };
  } catch (err) {
    if (stripeCode(err) !== "invoice_upcoming_none") {
      ctx?.warn("billing: next invoice preview failed", { code: stripeCode(err) ?? "network" });
    }
    return null;
  }
}

export async function getBillingSummary(
  services: Services,
  org: string,
  ctx?: InvocationContext,
): Promise<BillingSummary> {
  const [account, instances] = await Promise.all([
    readBilling(services, org),
    listInstances(services, org),
  ]);
  const counts = countLive(instances);
  const status = account?.subscriptionStatus;
  const subscribed = Boolean(account?.stripeSubscriptionId) && isLiveSubscription(status);
  const grace = account ? graceEndsAt(account, services.config.BILLING_GRACE_HOURS) : undefined;
  return {
    plan: subscribed ? "subscribed" : "none",
    subscription:
      account?.stripeSubscriptionId && status
        ? {
            status,
            quantity: account.subscriptionQuantity ?? 0,
            currentPeriodEnd: account.currentPeriodEnd?.toISOString() ?? null,
          }
        : null,
    instances: counts,
    freeInstances: account?.freeInstances ?? 0,
    nextInvoice:
      subscribed && account?.stripeSubscriptionId
        ? await nextInvoice(services, account.stripeSubscriptionId, ctx)
        : null,
    graceEndsAt: grace?.toISOString() ?? null,
  };
}
