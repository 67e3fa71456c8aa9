/**
 * Pure billing rules shared by entitlement, quantity sync and the lapse check: which instances
 * count, which subscription statuses pay for instances, and when a delinquency's grace ends.
 */
import type { Plan } from "../instances/store.js";

/** An instance that occupies a plan slot: anything but Deleted, Failed or on its way out. */
export function isLiveInstance(state: string): boolean {
  return state !== "Deleted" && state !== "Failed" && state !== "Deleting";
}

/** Statuses of a subscription that still exists (Stripe may still charge it). */
export function isLiveSubscription(status: string | undefined): boolean {
  return status !== undefined && status !== "canceled" && status !== "incomplete_expired";
}

export interface BillingFacts {
  subscriptionStatus?: string | undefined;
  paymentFailedAt?: Date | undefined;
  freeInstances?: number | undefined;
  subscriptionQuantity?: number | undefined;
}

/** When a past_due subscription stops paying for instances; undefined when not delinquent. */
export function graceEndsAt(billing: BillingFacts, graceHours: number): Date | undefined {
  if (billing.subscriptionStatus !== "past_due" || !billing.paymentFailedAt) return undefined;
  return new Date(billing.paymentFailedAt.getTime() + graceHours * 3600_000);
}

/**
 * Whether the subscription pays for instances now: active or trialing, or past_due until the
 * grace period after the first failure ends (a past_due without a recorded failure is within
 * grace: the failure time is recorded with the status).
 */
export function subscriptionPays(billing: BillingFacts, now: Date, graceHours: number): boolean {
  const s = billing.subscriptionStatus;
  if (s === "active" || s === "trialing") return true;
  if (s !== "past_due") return false;
  const end = graceEndsAt(billing, graceHours);
  return end === undefined || now.getTime() < end.getTime();
}

export type LapseReason = "canceled" | "unpaid" | "grace_expired" | "incomplete_expired" | "paused";

/**
 * Why the org's paid instances must go, or undefined when they may stay. Canceled and unpaid
 * lapse at once; past_due lapses when the grace period ends.
 */
export function lapseReason(
  billing: BillingFacts,
  now: Date,
  graceHours: number,
): LapseReason | undefined {
  switch (billing.subscriptionStatus) {
    case "canceled":
    case "unpaid":
    case "incomplete_expired":
    case "paused":
      return billing.subscriptionStatus;
    case "past_due":
      return subscriptionPays(billing, now, graceHours) ? undefined : "grace_expired";
    default:
      return undefined;
  }
}

export interface InstanceFacts {
  ref: string;
  plan: Plan;
  state: string;
}

/** Live instances by plan. */
export function countLive(instances: readonly InstanceFacts[]): Record<Plan, number> {
  const counts: Record<Plan, number> = { paid: 0, trial: 0, free: 0 };
  for (const i of instances) if (isLiveInstance(i.state)) counts[i.plan] += 1;
  return counts;
}
