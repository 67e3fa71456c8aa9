/**
 * Starting operations: what `PUT` / `DELETE /projects/{ref}/grafana`, the password rotation and
 * the reconciler call. Each start is one etag-conditional write of the instance row (a new
 * `operationId`, the first step) followed by the first message; a lost race re-reads and
 * decides again, so a PUT racing a DELETE ends with exactly one current operation.
 */
import { randomUUID } from "node:crypto";

import type { InvocationContext } from "@azure/functions";

import { checkEntitlement, recordTrialStart } from "../billing/entitlement.js";
import { AppError, conflict, notFound } from "../errors.js";
import {
  createInstance,
  getInstance,
  getProjectRef,
  saveInstance,
  type Instance,
} from "../instances/store.js";
import type { Services } from "../services.js";
import { isConflict } from "../storage/tables.js";
import { isProjectUp, supabaseFor } from "../supabase/client.js";
import { afterLeavingLive, isTerminal, syncBilling } from "./engine.js";
import {
  changeAdminPassword,
  decryptPassword,
  encryptPassword,
  generatePassword,
} from "./grafana-admin.js";
import { currentMessage, dispatchProvisioning } from "./messages.js";
import { FIRST_STEP } from "./steps.js";
import { logEvent } from "../telemetry.js";

/** An operation whose message is this late is re-driven (the message was lost). */
export const STUCK_AFTER_MS = 3 * 60_000;
const MAX_ROUNDS = 5;

export const isProvisioning = (i: Instance) =>
  i.operation === "provision" &&
  (i.state === "Requested" ||
    i.state === "Deploying" ||
    i.state === "Configuring" ||
    i.state === "Verifying");

/** True when the operation is in flight but its message is overdue. */
export function isStuck(i: Instance, now: Date): boolean {
  if (isTerminal(i.state)) return false;
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
  let saved: Instance;
  try {
    saved = await saveInstance(services, {
      ...i,
      attempts: i.attempts + 1,
      nextRunAt: services.clock.now(),
      updatedAt: services.clock.now(),
    });
  } catch (err) {
    if (isConflict(err)) return false;
    throw err;
  }
  await dispatchProvisioning(services, currentMessage(saved));
  return true;
}

/** Claims the ref for the org in `projectRefs` (a ref belongs to one org only). */
async function claimRef(services: Services, org: string, ref: string): Promise<void> {
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const owner = await getProjectRef(services, ref);
    if (owner) {
      if (owner.org !== org)
        throw conflict(
          "This project is monitored by another organization.",
          "project_owned_elsewhere",
        );
      return;
    }
    try {
      await services.tables
        .client("projectRefs")
        .createEntity({ partitionKey: ref, rowKey: "", org });
      return;
    } catch (err) {
      if (!isConflict(err)) throw err;
    }
  }
  throw new AppError(503, "unavailable", "The project could not be claimed; try again.");
}

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
 * runs (idempotent). A Failed instance gets a fresh operation that first removes what the
 * failed one left. 409 while the instance is being deleted, the ref belongs to another org or
 * the project is paused in Supabase; 404 when the project is not in the org; 402 when the org
 * is not entitled.
 */
export async function requestProvision(
  services: Services,
  req: ProvisionRequest,
  ctx?: InvocationContext,
): Promise<Instance> {
  const { org, ref } = req;
  const owner = await getProjectRef(services, ref);
  if (owner && owner.org !== org) {
    throw conflict("This project is monitored by another organization.", "project_owned_elsewhere");
  }
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

  for (let round = 0; round < MAX_ROUNDS; round++) {
    const existing = await getInstance(services, org, ref);
    const now = services.clock.now();
    if (existing && (isProvisioning(existing) || existing.state === "Running")) {
      if (isStuck(existing, now) && (await redrive(services, existing))) {
        return (await getInstance(services, org, ref)) ?? existing;
      }
      return existing;
    }
    if (existing?.state === "Deleting") {
      throw conflict(
        "This instance is being deleted; provision it again once it is deleted.",
        "instance_deleting",
      );
    }

    const entitlement = await checkEntitlement(services, org, ref);
    await claimRef(services, org, ref);
    let trialEndsAt: Date | undefined;
    if (entitlement.plan === "trial" && entitlement.trialEndsAt) {
      trialEndsAt = (await recordTrialStart(services, org, ref, entitlement.trialEndsAt))
        .trialEndsAt;
    }

    const afterFailure = existing?.state === "Failed";
    const instance: Instance = {
      ...(existing ?? {}),
      org,
      ref,
      state: "Requested",
      operationId: randomUUID(),
      operation: "provision",
      step: afterFailure ? FIRST_STEP.provisionAfterFailure : FIRST_STEP.provision,
      attempts: 0,
      failures: 0,
      operationStartedAt: now,
      operationReason: afterFailure ? "retry" : "requested",
      nextRunAt: now,
      plan: entitlement.plan,
      trialEndsAt,
      trialReminderSentAt:
        existing?.trialEndsAt?.getTime() === trialEndsAt?.getTime()
          ? existing?.trialReminderSentAt
          : undefined,
      projectName: project.name,
      requestedBy: req.userId,
      lastError: undefined,
      privateIp: undefined,
      url: undefined,
      readyAt: undefined,
      // A fresh host after a deletion gets a fresh password; a retry keeps the one it had.
      passwordSecret: afterFailure ? existing.passwordSecret : undefined,
      pendingPasswordSecret: undefined,
      createdAt: existing?.createdAt ?? now,
      updatedAt: now,
    };
    let saved: Instance;
    try {
      saved = existing
        ? await saveInstance(services, instance)
        : await createInstance(services, { ...instance, etag: undefined });
    } catch (err) {
      if (isConflict(err)) continue;
      throw err;
    }
    await dispatchProvisioning(services, currentMessage(saved));
    if (ctx)
      logEvent(ctx, "info", "provisioning requested", {
        event: "provisioning.step",
        operationId: saved.operationId,
        ref,
        org,
        step: saved.step,
        attempt: 0,
        durationMs: 0,
        operation: "provision",
        state: saved.state,
        outcome: "requested",
      });
    if (saved.plan === "paid" && ctx) await syncBilling(services, ctx, org);
    return saved;
  }
  throw new AppError(503, "unavailable", "The instance kept changing; try again.");
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
 * Starts deprovisioning (superseding a provision in flight), or returns the instance when it is
 * already being deleted or deleted (idempotent). 404 when there is no instance.
 */
export async function requestDeprovision(
  services: Services,
  req: DeprovisionRequest,
  ctx?: InvocationContext,
): Promise<Instance> {
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const existing = await getInstance(services, req.org, req.ref);
    if (!existing) throw notFound("This project has no Grafana instance.");
    const now = services.clock.now();
    if (existing.state === "Deleted") return existing;
    if (existing.state === "Deleting" && existing.operation === "deprovision") {
      if (isStuck(existing, now) && (await redrive(services, existing))) {
        return (await getInstance(services, req.org, req.ref)) ?? existing;
      }
      return existing;
    }
    const instance: Instance = {
      ...existing,
      state: "Deleting",
      operationId: randomUUID(),
      operation: "deprovision",
      step: FIRST_STEP.deprovision,
      attempts: 0,
      failures: 0,
      operationStartedAt: now,
      operationReason: req.reason,
      nextRunAt: now,
      requestedBy: req.userId ?? existing.requestedBy,
      lastError: undefined,
      updatedAt: now,
    };
    let saved: Instance;
    try {
      saved = await saveInstance(services, instance);
    } catch (err) {
      if (isConflict(err)) continue;
      throw err;
    }
    await dispatchProvisioning(services, currentMessage(saved));
    if (ctx)
      logEvent(ctx, "info", "deprovisioning requested", {
        event: "provisioning.step",
        operationId: saved.operationId,
        ref: saved.ref,
        org: saved.org,
        step: saved.step,
        attempt: 0,
        durationMs: 0,
        operation: "deprovision",
        state: saved.state,
        outcome: "requested",
        reason: req.reason,
      });
    if (ctx) await afterLeavingLive({ services, ctx }, existing, saved);
    return saved;
  }
  throw new AppError(503, "unavailable", "The instance kept changing; try again.");
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

  for (let round = 0; round < MAX_ROUNDS; round++) {
    try {
      await saveInstance(services, {
        ...current,
        passwordSecret: await encryptPassword(services, org, ref, next),
        pendingPasswordSecret: undefined,
        updatedAt: services.clock.now(),
      });
      return next;
    } catch (err) {
      if (!isConflict(err)) throw err;
      const reread = await getInstance(services, org, ref);
      if (!reread || reread.state !== "Running") {
        throw conflict("The instance changed while the password was being set.");
      }
      current = reread;
    }
  }
  throw new AppError(503, "unavailable", "The new password could not be saved; try again.");
}
