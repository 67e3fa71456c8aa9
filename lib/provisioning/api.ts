/**
 * Starting operations: what `PUT` / `DELETE /projects/{ref}/grafana`, the operators' upgrade, the
 * reconciler's heal and the password rotation call. Whether an operation may start is the
 * lifecycle's `decideStart`; the start itself is one etag-conditional write of the instance row
 * (`beginOperation`: a new `operationId`, the first step), then the first message and the
 * start's follow-ups. A lost race re-reads and decides again, so a PUT racing a DELETE ends with
 * exactly one current operation.
 */
import { randomUUID } from "node:crypto";

import type { InvocationContext } from "@azure/functions";

import { checkEntitlement } from "../billing/entitlement.js";
import { AppError, conflict, notFound } from "../errors.js";
import { beginOperation, decideStart, isSettled, type Operation } from "../instances/lifecycle.js";
import type { Instance } from "../instances/model.js";
import {
  assertRefNotOwnedElsewhere,
  claimRef,
  recordTrialStart,
} from "../instances/project-refs.js";
import { getInstance, saveInstance, trySaveInstance } from "../instances/store.js";
import type { Services } from "../services.js";
import { isConflict, retryOnConflict } from "../storage/tables.js";
import { isProjectUp, supabaseFor } from "../supabase/client.js";
import { logEvent } from "../telemetry.js";
import { applyTransition, RowMovedError } from "./engine.js";
import {
  changeAdminPassword,
  decryptPassword,
  encryptPassword,
  generatePassword,
} from "./grafana-admin.js";
import { currentMessage, dispatchProvisioning } from "./messages.js";

/** An operation whose message is this late is re-driven (the message was lost). */
export const STUCK_AFTER_MS = 3 * 60_000;

const keptChanging = () =>
  new AppError(503, "unavailable", "The instance kept changing; try again.");

/** True when the operation is in flight but its message is overdue. */
export function isStuck(i: Instance, now: Date): boolean {
  if (isSettled(i.state)) return false;
  const due = i.nextRunAt ?? i.updatedAt;
  return now.getTime() - due.getTime() > STUCK_AFTER_MS;
}

/**
 * Re-drives an operation whose message is overdue: moves it to the next attempt of its step
 * (etag-conditional) and sends that attempt's message. A new message id, so the queue's
 * duplicate detection cannot drop it; should the lost message turn up after all, it is stale.
 * Returns false when the row moved meanwhile (someone else is driving it).
 */
export async function redrive(services: Services, i: Instance): Promise<boolean> {
  const saved = await trySaveInstance(services, {
    ...i,
    attempts: i.attempts + 1,
    nextRunAt: services.clock.now(),
    updatedAt: services.clock.now(),
  });
  if (!saved) return false;
  await dispatchProvisioning(services, currentMessage(saved));
  return true;
}

/** Re-drives a stuck operation, or answers the instance as it is. */
async function currentOrRedriven(services: Services, i: Instance): Promise<Instance> {
  if (isStuck(i, services.clock.now()) && (await redrive(services, i)))
    return (await getInstance(services, i.org, i.ref)) ?? i;
  return i;
}

/**
 * Writes the start of an operation over `existing` (or a new row with `fresh`), sends its first
 * message and runs its follow-ups. Throws RowMovedError / a 409 from create on a lost race.
 */
async function begin(
  services: Services,
  ctx: InvocationContext,
  existing: Instance | undefined,
  operation: Operation,
  opts: { afterFailure: boolean; reason: string; fresh?: Instance; patch?: Partial<Instance> },
): Promise<Instance> {
  const now = services.clock.now();
  const { patch, followUps } = beginOperation(existing, {
    operation,
    operationId: randomUUID(),
    reason: opts.reason,
    now,
    afterFailure: opts.afterFailure,
  });
  const before = existing ?? opts.fresh;
  if (!before) throw new Error("a new instance row needs its fields");
  const saved = await applyTransition(services, ctx, before, {
    patch: { ...opts.patch, ...patch },
    dispatchAt: now,
    followUps,
  });
  logEvent(ctx, "info", `${operation} requested`, {
    event: "provisioning.step",
    operationId: saved.operationId,
    ref: saved.ref,
    org: saved.org,
    step: saved.step,
    attempt: 0,
    durationMs: 0,
    operation,
    state: saved.state,
    outcome: "requested",
    reason: opts.reason,
  });
  return saved;
}

/** Re-reads and decides again while the row moves under a start (a lost race). */
const retryStart = <T>(attempt: () => Promise<T>) =>
  retryOnConflict(attempt, { exhausted: keptChanging });

/** 409 `project_paused`: the Supabase project is paused (or otherwise not running). */
export const projectPaused = (status: string) =>
  conflict(
    status === "INACTIVE"
      ? "This project is paused in Supabase; restore the project in Supabase first, then provision Grafana."
      : `This project is not running in Supabase (status ${status}); restore the project in Supabase first, then provision Grafana.`,
    "project_paused",
  );

export interface ProvisionRequest {
  org: string;
  ref: string;
  /** The verified user who asked (gets the "ready" e-mail). */
  userId: string;
}

/**
 * Starts provisioning, or returns the instance when an operation is already under way or it
 * runs (idempotent). A Failed instance gets a fresh operation that first removes the host the
 * failed one left. 409 while the instance is being deleted, the ref belongs to another org or
 * the project is paused in Supabase; 404 when the project is not in the org; 402 when the org
 * is not entitled.
 */
export async function requestProvision(
  services: Services,
  req: ProvisionRequest,
  ctx: InvocationContext,
): Promise<Instance> {
  const { org, ref } = req;
  await assertRefNotOwnedElsewhere(services, org, ref);
  const supabase = supabaseFor(services, org);
  // The org's project list is cached briefly (the dashboard has just loaded it), so a burst of
  // PUTs costs no Management API call per project; a project missing from it is looked up.
  const listed = (await supabase.listProjects()).find((p) => p.ref === ref);
  let project = listed ?? (await supabase.getProject(ref));
  if (!project) throw notFound("There is no such project in your organization.");
  // A paused project cannot be monitored (Supabase refuses its keys): refuse before anything
  // is written. The list may predate a restore, so a paused entry in it is looked up afresh.
  if (listed && !isProjectUp(project.status)) project = await supabase.getProject(ref);
  if (!project) throw notFound("There is no such project in your organization.");
  if (!isProjectUp(project.status)) throw projectPaused(project.status);
  const projectName = project.name;

  return retryStart(async () => {
    const existing = await getInstance(services, org, ref);
    const decision = decideStart(existing, "provision");
    if (decision.kind === "refuse") throw conflict(decision.message, decision.code);
    if (decision.kind === "current" && existing) return currentOrRedriven(services, existing);

    const entitlement = await checkEntitlement(services, org, ref);
    await claimRef(services, org, ref);
    let trialEndsAt: Date | undefined;
    if (entitlement.plan === "trial" && entitlement.trialEndsAt) {
      trialEndsAt = (await recordTrialStart(services, org, ref, entitlement.trialEndsAt))
        .trialEndsAt;
    }
    const afterFailure = decision.kind === "start" && decision.afterFailure;
    const now = services.clock.now();
    const fields: Partial<Instance> = {
      plan: entitlement.plan,
      trialEndsAt,
      trialReminderSentAt:
        existing?.trialEndsAt?.getTime() === trialEndsAt?.getTime()
          ? existing?.trialReminderSentAt
          : undefined,
      projectName,
      requestedBy: req.userId,
      privateIp: undefined,
      url: undefined,
      readyAt: undefined,
      templateSpecId: undefined,
      // A fresh host after a deletion gets a fresh password; a retry keeps the one it had.
      passwordSecret: afterFailure ? existing?.passwordSecret : undefined,
      pendingPasswordSecret: undefined,
    };
    return begin(services, ctx, existing, "provision", {
      afterFailure,
      reason: afterFailure ? "retry" : "requested",
      patch: fields,
      fresh: {
        org,
        ref,
        createdAt: now,
        updatedAt: now,
        plan: entitlement.plan,
      } as Instance,
    });
  });
}

export interface DeprovisionRequest {
  org: string;
  ref: string;
  /** "requested" (a user), "trial_ended", "payment_lapsed", "operator", … */
  reason: string;
  /** The user who asked; unset keeps whoever asked for the instance (gets the e-mail). */
  userId?: string;
}

/**
 * Starts deprovisioning (superseding whatever operation runs), or returns the instance when it is
 * already being deleted or deleted (idempotent). 404 when there is no instance.
 */
export async function requestDeprovision(
  services: Services,
  req: DeprovisionRequest,
  ctx: InvocationContext,
): Promise<Instance> {
  return retryStart(async () => {
    const existing = await getInstance(services, req.org, req.ref);
    if (!existing) throw notFound("This project has no Grafana instance.");
    const decision = decideStart(existing, "deprovision");
    if (decision.kind !== "start") return currentOrRedriven(services, existing);
    return begin(services, ctx, existing, "deprovision", {
      afterFailure: false,
      reason: req.reason,
      patch: { requestedBy: req.userId ?? existing.requestedBy },
    });
  });
}

export interface ReplacementRequest {
  operation: "upgrade" | "heal";
  /** Why: `rollout:<id>`, `unresponsive`, `vm_missing`, `operator`, … */
  reason: string;
  /** The template spec version to deploy (unset: the configured one). */
  templateSpecId?: string | undefined;
}

/**
 * Starts replacing the host of `i` (upgrade or heal) from the row as read, in one attempt:
 * undefined when the lifecycle refuses it or the row moved meanwhile (the caller looks again
 * next time). The data disk stays; see the lifecycle.
 */
export async function startReplacement(
  services: Services,
  ctx: InvocationContext,
  i: Instance,
  req: ReplacementRequest,
): Promise<Instance | undefined> {
  const decision = decideStart(i, req.operation);
  if (decision.kind !== "start") return undefined;
  try {
    return await begin(services, ctx, i, req.operation, {
      afterFailure: decision.afterFailure,
      reason: req.reason,
      patch: { templateSpecId: req.templateSpecId },
    });
  } catch (err) {
    if (err instanceof RowMovedError) return undefined;
    throw err;
  }
}

/**
 * Sets a new Grafana admin password and returns it (the only time it is shown). The new
 * password is stored as pending before Grafana is changed, so a crash in between never loses
 * the one Grafana has.
 */
export async function rotateGrafanaPassword(
  services: Services,
  org: string,
  ref: string,
): Promise<string> {
  const instance = await getInstance(services, org, ref);
  if (!instance) throw notFound("This project has no Grafana instance.");
  if (instance.state !== "Running" || !instance.passwordSecret) {
    throw conflict(
      "The password can be changed once the instance is running.",
      "instance_not_running",
    );
  }
  const candidates = [await decryptPassword(services, org, ref, instance.passwordSecret)];
  if (instance.pendingPasswordSecret) {
    candidates.push(await decryptPassword(services, org, ref, instance.pendingPasswordSecret));
  }
  const next = generatePassword();
  let current: Instance;
  try {
    current = await saveInstance(services, {
      ...instance,
      pendingPasswordSecret: await encryptPassword(services, org, ref, next),
      updatedAt: services.clock.now(),
    });
  } catch (err) {
    if (isConflict(err)) throw conflict("The instance changed meanwhile; try again.");
    throw err;
  }

  let changed = false;
  let lastStatus = 0;
  for (const candidate of candidates) {
    lastStatus = await changeAdminPassword(services, ref, candidate, next);
    if (lastStatus >= 200 && lastStatus < 300) {
      changed = true;
      break;
    }
    if (lastStatus !== 401) break;
  }
  if (!changed) {
    throw new AppError(
      502,
      "upstream_error",
      lastStatus === 0
        ? "Grafana did not answer; the password is unchanged. Try again in a minute."
        : `Grafana refused the change (HTTP ${lastStatus}); the password is unchanged.`,
    );
  }

  let first = true;
  await retryOnConflict(
    async () => {
      if (!first) {
        const reread = await getInstance(services, org, ref);
        if (!reread || reread.state !== "Running") {
          throw conflict("The instance changed while the password was being set.");
        }
        current = reread;
      }
      first = false;
      await saveInstance(services, {
        ...current,
        passwordSecret: await encryptPassword(services, org, ref, next),
        pendingPasswordSecret: undefined,
        updatedAt: services.clock.now(),
      });
    },
    {
      exhausted: () =>
        new AppError(503, "unavailable", "The new password could not be saved; try again."),
    },
  );
  return next;
}
