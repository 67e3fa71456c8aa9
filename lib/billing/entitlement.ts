/**
 * Entitlement: may this org run an instance for this project now, and on which plan?
 *
 * `decideEntitlement` is pure. Plan preference: a live instance keeps its plan while that plan
 * is still valid; otherwise free (an unused operator grant) > paid (subscription active or
 * trialing, or past_due within the grace period) > trial (never used by this project, or still
 * running from an earlier provision) > refused. The trial is once per project ever, recorded in
 * `projectRefs` (`recordTrialStart`), so deleting and re-provisioning never restarts it.
 */
import { AppError, conflict } from "../errors.js";
import { getProjectRef, listInstances } from "../instances/store.js";
import type { Services } from "../services.js";
import { isConflict } from "../storage/tables.js";
import { readBilling } from "./account.js";
import {
  isLiveInstance,
  lapseReason,
  subscriptionPays,
  type BillingFacts,
  type InstanceFacts,
} from "./rules.js";

export interface EntitlementInput {
  now: Date;
  ref: string;
  org: string;
  projectRef?:
    { org: string; trialStartedAt?: Date | undefined; trialEndsAt?: Date | undefined } | undefined;
  billing: BillingFacts;
  /** The org's instances. */
  instances: readonly InstanceFacts[];
  trialHours: number;
  graceHours: number;
}

export type RefusalCode = "trial_used" | "payment_required" | "subscription_lapsed";

export type EntitlementDecision =
  | { allowed: true; plan: "trial" | "paid" | "free"; trialEndsAt?: Date }
  | { allowed: false; code: RefusalCode; message: string };

type TrialState =
  { kind: "unused" } | { kind: "running"; endsAt: Date } | { kind: "used"; endedAt?: Date };

function trialState(input: EntitlementInput): TrialState {
  const p = input.projectRef;
  if (!p || (!p.trialStartedAt && !p.trialEndsAt)) return { kind: "unused" };
  if (p.trialEndsAt && p.trialEndsAt.getTime() > input.now.getTime()) {
    return { kind: "running", endsAt: p.trialEndsAt };
  }
  return p.trialEndsAt ? { kind: "used", endedAt: p.trialEndsAt } : { kind: "used" };
}

export function decideEntitlement(input: EntitlementInput): EntitlementDecision {
  const { now, ref, billing } = input;
  const others = input.instances.filter((i) => i.ref !== ref && isLiveInstance(i.state));
  const freeInUse = others.filter((i) => i.plan === "free").length;
  const freeAvailable = (billing.freeInstances ?? 0) > freeInUse;
  const pays = subscriptionPays(billing, now, input.graceHours);
  const trial = trialState(input);

  // A live instance keeps its plan while that plan still holds.
  const existing = input.instances.find((i) => i.ref === ref && isLiveInstance(i.state));
  if (existing) {
    if (existing.plan === "free" && freeAvailable) return { allowed: true, plan: "free" };
    if (existing.plan === "paid" && pays) return { allowed: true, plan: "paid" };
    if (existing.plan === "trial" && trial.kind === "running") {
      return { allowed: true, plan: "trial", trialEndsAt: trial.endsAt };
    }
  }

  if (freeAvailable) return { allowed: true, plan: "free" };
  if (pays) return { allowed: true, plan: "paid" };
  if (trial.kind === "unused") {
    return {
      allowed: true,
      plan: "trial",
      trialEndsAt: new Date(now.getTime() + input.trialHours * 3600_000),
    };
  }
  if (trial.kind === "running") return { allowed: true, plan: "trial", trialEndsAt: trial.endsAt };

  const lapse = lapseReason(billing, now, input.graceHours);
  if (lapse) {
    const why =
      lapse === "grace_expired"
        ? "a payment failed and the grace period has ended"
        : `the subscription is ${billing.subscriptionStatus ?? lapse}`;
    return {
      allowed: false,
      code: "subscription_lapsed",
      message: `This organization cannot run paid instances because ${why}. Update the payment method in the billing portal or subscribe again.`,
    };
  }
  if (billing.subscriptionStatus === undefined) {
    const ended = trial.endedAt ? ` on ${trial.endedAt.toISOString()}` : "";
    return {
      allowed: false,
      code: "trial_used",
      message: `The free trial of this project ended${ended} and a project gets one trial only. Subscribe to keep monitoring it.`,
    };
  }
  return {
    allowed: false,
    code: "payment_required",
    message: `The subscription is ${billing.subscriptionStatus}: complete the payment to run paid instances.`,
  };
}

export type Entitlement = Extract<EntitlementDecision, { allowed: true }>;

/**
 * Reads the org's billing state, the project's trial record and the org's instances, and decides.
 * Throws `AppError(402, code, message)` when the org may not run an instance for this project.
 */
export async function checkEntitlement(
  services: Services,
  org: string,
  ref: string,
): Promise<Entitlement> {
  const [billing, projectRef, instances] = await Promise.all([
    readBilling(services, org),
    getProjectRef(services, ref),
    listInstances(services, org),
  ]);
  const decision = decideEntitlement({
    now: services.clock.now(),
    ref,
    org,
    projectRef,
    billing: billing ?? {},
    instances,
    trialHours: services.config.TRIAL_HOURS,
    graceHours: services.config.BILLING_GRACE_HOURS,
  });
  if (!decision.allowed) throw new AppError(402, decision.code, decision.message);
  return decision;
}

export interface TrialRecord {
  trialStartedAt: Date;
  trialEndsAt: Date;
}

/**
 * Records that the project started its one trial. Creates the `projectRefs` row when absent;
 * otherwise sets the trial with an etag-conditional Merge. A trial already recorded is never
 * moved: the recorded one is returned. A ref owned by another org is a 409.
 */
export async function recordTrialStart(
  services: Services,
  org: string,
  ref: string,
  trialEndsAt: Date,
): Promise<TrialRecord> {
  const table = services.tables.client("projectRefs");
  for (let attempt = 0; attempt < 5; attempt++) {
    const current = await getProjectRef(services, ref);
    const now = services.clock.now();
    if (!current) {
      try {
        await table.createEntity({
          partitionKey: ref,
          rowKey: "",
          org,
          trialStartedAt: now,
          trialEndsAt,
        });
        return { trialStartedAt: now, trialEndsAt };
      } catch (err) {
        if (isConflict(err)) continue;
        throw err;
      }
    }
    if (current.org !== org) {
      throw conflict(
        "This project is monitored by another organization.",
        "project_owned_elsewhere",
      );
    }
    if (current.trialStartedAt || current.trialEndsAt) {
      const startedAt = current.trialStartedAt ?? current.trialEndsAt ?? now;
      return { trialStartedAt: startedAt, trialEndsAt: current.trialEndsAt ?? startedAt };
    }
    try {
      await table.updateEntity(
        { partitionKey: ref, rowKey: "", trialStartedAt: now, trialEndsAt },
        "Merge",
        current.etag ? { etag: current.etag } : undefined,
      );
      return { trialStartedAt: now, trialEndsAt };
    } catch (err) {
      if (isConflict(err)) continue;
      throw err;
    }
  }
  throw new AppError(503, "unavailable", "The project's trial could not be recorded; try again.");
}
