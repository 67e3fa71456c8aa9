/**
 * Lapsed orgs: a subscription that is canceled or unpaid (or otherwise no longer charged), or
 * past_due beyond `BILLING_GRACE_HOURS` since the first failed payment, while the org still has
 * live paid instances. The reconciler deprovisions those instances (it owns that side effect).
 */
import { listInstances } from "../instances/store.js";
import type { Services } from "../services.js";
import { listBillingByStatus } from "./account.js";
import { isLiveInstance, lapseReason, type LapseReason } from "./rules.js";

export interface LapsedOrg {
  org: string;
  reason: LapseReason;
  subscriptionStatus: string;
  /** When the grace period ended (past_due only). */
  graceEndedAt?: Date | undefined;
  /** Live paid instances to deprovision. */
  paidRefs: string[];
}

const CANDIDATE_STATUSES = [
  "canceled",
  "unpaid",
  "past_due",
  "incomplete_expired",
  "paused",
] as const;

export async function findLapsedOrgs(services: Services, now: Date): Promise<LapsedOrg[]> {
  const graceHours = services.config.BILLING_GRACE_HOURS;
  const candidates = await listBillingByStatus(services, CANDIDATE_STATUSES);
  const out: LapsedOrg[] = [];
  for (const account of candidates) {
    const reason = lapseReason(account, now, graceHours);
    if (!reason || !account.subscriptionStatus) continue;
    const paidRefs = (await listInstances(services, account.org))
      .filter((i) => i.plan === "paid" && isLiveInstance(i.state))
      .map((i) => i.ref)
      .sort();
    if (paidRefs.length === 0) continue;
    out.push({
      org: account.org,
      reason,
      subscriptionStatus: account.subscriptionStatus,
      graceEndedAt:
        reason === "grace_expired" && account.paymentFailedAt
          ? new Date(account.paymentFailedAt.getTime() + graceHours * 3600_000)
          : undefined,
      paidRefs,
    });
  }
  return out.sort((a, b) => a.org.localeCompare(b.org));
}
