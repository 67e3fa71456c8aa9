/**
 * The instance lifecycle: the only definition of an instance's states, its operations and their
 * steps, the transitions between them and the predicates over states. Pure: no I/O, time comes
 * in as `now`.
 *
 * | operation   | steps (state while the step is current)                                          | ends     |
 * |-------------|-----------------------------------------------------------------------------------|----------|
 * | provision   | (cleanup) → deploy (Requested) → await-deployment (Deploying) → configure (Configuring) → verify (Verifying) | Running  |
 * | upgrade     | unroute → remove-host → deploy (Replacing) → await-deployment → configure → verify | Running  |
 * | heal        | as upgrade                                                                        | Running  |
 * | deprovision | drain → delete-resources (Deleting)                                               | Deleted  |
 *
 * Any operation that gives up ends `Failed`. `cleanup` runs only when a provision follows a
 * failed operation. Upgrade and heal replace the host (VM, NIC, OS disk) and keep its data disk.
 *
 * Steps only decide (they return a {@link StepResult}); {@link next} turns the result into the
 * row's patch, when the next message is due and the follow-ups; the consumer applies it.
 */
import { retryDelayMs } from "../provisioning/backoff.js";
import type { Instance } from "./model.js";

export const INSTANCE_STATES = [
  "Requested",
  "Replacing",
  "Deploying",
  "Configuring",
  "Verifying",
  "Running",
  "Deleting",
  "Deleted",
  "Failed",
] as const;
export type InstanceState = (typeof INSTANCE_STATES)[number];

export const OPERATIONS = ["provision", "upgrade", "heal", "deprovision"] as const;
export type Operation = (typeof OPERATIONS)[number];

export const STEP_IDS = [
  "cleanup",
  "unroute",
  "remove-host",
  "deploy",
  "await-deployment",
  "configure",
  "verify",
  "drain",
  "delete-resources",
] as const;
export type StepId = (typeof STEP_IDS)[number];
/** Where an operation is: one of its steps, or over. */
export type Position = StepId | "done" | "failed";
export const POSITIONS: readonly Position[] = [...STEP_IDS, "done", "failed"];

/** The steps of each operation, in order, and the state an instance is in while each runs. */
const REPLACE_HOST: readonly (readonly [StepId, InstanceState])[] = [
  ["unroute", "Replacing"],
  ["remove-host", "Replacing"],
  ["deploy", "Replacing"],
  ["await-deployment", "Deploying"],
  ["configure", "Configuring"],
  ["verify", "Verifying"],
];
export const TRANSITIONS: Readonly<
  Record<Operation, { steps: readonly (readonly [StepId, InstanceState])[]; ends: InstanceState }>
> = {
  provision: {
    steps: [
      ["cleanup", "Requested"],
      ["deploy", "Requested"],
      ["await-deployment", "Deploying"],
      ["configure", "Configuring"],
      ["verify", "Verifying"],
    ],
    ends: "Running",
  },
  upgrade: { steps: REPLACE_HOST, ends: "Running" },
  heal: { steps: REPLACE_HOST, ends: "Running" },
  deprovision: {
    steps: [
      ["drain", "Deleting"],
      ["delete-resources", "Deleting"],
    ],
    ends: "Deleted",
  },
};

// ----- predicates ---------------------------------------------------------------------------

/** No operation is running: the instance stays as it is until something starts one. */
export const isSettled = (s: InstanceState) => s === "Running" || s === "Deleted" || s === "Failed";
/** An instance that exists for its org (occupies a plan slot): not gone and not on its way out. */
export const occupiesPlan = (s: InstanceState) =>
  s !== "Deleted" && s !== "Failed" && s !== "Deleting";
/** The project has an instance row that is not Deleted (its Azure resources are wanted). */
export const hasResources = (i: Pick<Instance, "state"> | undefined): boolean =>
  i !== undefined && i.state !== "Deleted";
/** States in which an instance with a private IP is reachable through the gateway. */
export const ROUTABLE_STATES: readonly InstanceState[] = ["Configuring", "Verifying", "Running"];
export const isRoutable = (i: Pick<Instance, "state" | "privateIp">) =>
  i.privateIp !== undefined && ROUTABLE_STATES.includes(i.state);
// ----- starting an operation ----------------------------------------------------------------

export type StartDecision =
  /** Start a new operation; `afterFailure` when it follows a Failed one (cleanup first). */
  | { kind: "start"; afterFailure: boolean }
  /** The wanted outcome is already under way or reached: answer with the instance as it is. */
  | { kind: "current" }
  | { kind: "refuse"; code: string; message: string };

/**
 * Whether `operation` may start on an instance (undefined: none yet). Pure rules:
 * - provision: on none, Deleted or Failed; idempotent while provisioning or Running (an upgrade
 *   or heal in flight counts: the instance will be Running); refused while Deleting;
 * - deprovision: anything but Deleted supersedes whatever runs; idempotent while deleting;
 * - upgrade / heal: on a Running instance, or a Failed one whose upgrade or heal failed (a
 *   retry); never over another operation.
 */
export function decideStart(existing: Instance | undefined, operation: Operation): StartDecision {
  const s = existing?.state;
  switch (operation) {
    case "provision":
      if (!existing || s === "Deleted") return { kind: "start", afterFailure: false };
      if (s === "Failed") return { kind: "start", afterFailure: true };
      if (s === "Deleting")
        return {
          kind: "refuse",
          code: "instance_deleting",
          message: "This instance is being deleted; provision it again once it is deleted.",
        };
      return { kind: "current" };
    case "deprovision":
      if (!existing) return { kind: "refuse", code: "not_found", message: "No instance." };
      if (s === "Deleted") return { kind: "current" };
      if (s === "Deleting" && existing.operation === "deprovision") return { kind: "current" };
      return { kind: "start", afterFailure: false };
    case "upgrade":
    case "heal":
      if (!existing || s === "Deleted" || s === "Deleting")
        return { kind: "refuse", code: "instance_not_running", message: "No running instance." };
      if (s === "Running") return { kind: "start", afterFailure: false };
      if (s === "Failed" && (existing.operation === "upgrade" || existing.operation === "heal"))
        return { kind: "start", afterFailure: true };
      if (!isSettled(existing.state) && existing.operation === operation)
        return { kind: "current" };
      return {
        kind: "refuse",
        code: "instance_busy",
        message: `Another operation (${existing.operation}) is running on this instance.`,
      };
  }
}

export interface OperationStart {
  operation: Operation;
  operationId: string;
  reason: string;
  now: Date;
  afterFailure: boolean;
}

/** The first step of an operation. */
export function firstStep(operation: Operation, afterFailure: boolean): StepId {
  if (operation === "provision") return afterFailure ? "cleanup" : "deploy";
  if (operation === "deprovision") return "drain";
  // A retried upgrade or heal of a Failed instance: the route is gone already.
  return afterFailure ? "remove-host" : "unroute";
}

export function stateAt(operation: Operation, step: StepId): InstanceState {
  const found = TRANSITIONS[operation].steps.find(([s]) => s === step);
  if (!found) throw new Error(`step ${step} is not part of ${operation}`);
  return found[1];
}

/** What a new operation writes to the row, and what must follow once that is saved. */
export function beginOperation(
  before: Instance | undefined,
  start: OperationStart,
): { patch: Partial<Instance>; followUps: FollowUp[] } {
  const step = firstStep(start.operation, start.afterFailure);
  const replacing = start.operation === "upgrade" || start.operation === "heal";
  const patch: Partial<Instance> = {
    state: stateAt(start.operation, step),
    operation: start.operation,
    operationId: start.operationId,
    step,
    attempts: 0,
    failures: 0,
    operationStartedAt: start.now,
    operationReason: start.reason,
    nextRunAt: start.now,
    lastError: undefined,
    updatedAt: start.now,
    // A replaced host gets a new NIC: its old address must not stay routed.
    ...(replacing
      ? { privateIp: undefined, unhealthySince: undefined, failedProbes: undefined }
      : {}),
  };
  const after = { ...(before ?? {}), ...patch } as Instance;
  return { patch, followUps: followUpsOf(before, after, undefined) };
}

// ----- one step's outcome -------------------------------------------------------------------

/** What a step decided. Steps never write `state`; {@link next} does. */
export type StepResult =
  /** The step is done: the next step (or the end of the operation) follows after `delayMs`. */
  | { kind: "done"; patch?: Partial<Instance>; delayMs?: number }
  /** Expected waiting (a deployment running, a delete in progress): not a failure. */
  | { kind: "wait"; why: string; delayMs?: number }
  /** A transient failure: retried with back-off within the operation's budget. */
  | { kind: "retry"; error: { message: string; retryAfterMs?: number | undefined } }
  /** A permanent failure: the operation ends Failed. */
  | { kind: "fail"; message: string };

export interface Limits {
  /** Poll interval of waits, and the base of the retry back-off. */
  pollMs: number;
  /** Failed attempts after which an operation gives up. */
  maxFailures: number;
  /** Wall time after which an operation gives up. */
  budgetMs: number;
  /** [0, 1): the back-off jitter. */
  random: () => number;
}

/**
 * Follow-ups run after the transition is saved; each is idempotent:
 * - `gateway-sync`: re-render the gateway (a route appeared or went);
 * - `billing-sync`: align the Stripe subscription quantity with the paid instances;
 * - `notify-ready` / `notify-deleted`: e-mail the requester that Grafana is ready / was deleted;
 * - `notify-failed`: e-mail the requester that a replacement of the host (upgrade, heal) failed;
 * - `configure`: make sure the host serves the desired alerting configuration;
 * - `rollout`: let a rollout of a new host version start its next instances.
 */
export const FOLLOW_UPS = [
  "gateway-sync",
  "billing-sync",
  "notify-ready",
  "notify-deleted",
  "notify-failed",
  "configure",
  "rollout",
] as const;
export type FollowUp = (typeof FOLLOW_UPS)[number];

export type Outcome = "advanced" | "waiting" | "retrying" | "completed" | "failed";

export interface Transition {
  outcome: Outcome;
  patch: Partial<Instance>;
  /** When the message of the next position is due; undefined when the operation is over. */
  dispatchAt?: Date;
  followUps: FollowUp[];
}

const WHAT: Record<Operation, string> = {
  provision: "Provisioning",
  upgrade: "The upgrade",
  heal: "Replacing the unresponsive host",
  deprovision: "Deprovisioning",
};

/** A readable reason when the operation has used up its wall-time budget, else undefined. */
export function overBudget(i: Instance, now: Date, limits: Limits): string | undefined {
  if (now.getTime() - i.operationStartedAt.getTime() <= limits.budgetMs) return undefined;
  const last = i.lastError ? ` Last error: ${i.lastError}` : "";
  return truncate(
    `${WHAT[i.operation]} did not finish within ${Math.round(limits.budgetMs / 60_000)} minutes.${last}`,
  );
}

/** Why a dead-lettered message stopped its operation. */
export function deadLetterMessage(i: Instance): string {
  return `${WHAT[i.operation]} stopped after repeated internal errors at step "${i.step}". Try again; if it keeps failing, contact support.`;
}

const truncate = (s: string, max = 500) => (s.length <= max ? s : `${s.slice(0, max - 1)}…`);

/** The step after `step` in `operation`, or undefined when `step` is its last. */
export function stepAfter(operation: Operation, step: StepId): StepId | undefined {
  const steps = TRANSITIONS[operation].steps;
  const at = steps.findIndex(([s]) => s === step);
  if (at < 0) throw new Error(`step ${step} is not part of ${operation}`);
  return steps[at + 1]?.[0];
}

/**
 * The transition of an instance whose current step returned `result` at `now`: the patch to
 * save (etag-conditionally), when the next message is due and what follows.
 */
export function next(i: Instance, result: StepResult, now: Date, limits: Limits): Transition {
  const step = i.step;
  if (step === "done" || step === "failed") throw new Error(`operation ${i.operationId} is over`);
  const at = (ms: number) => new Date(now.getTime() + ms);
  switch (result.kind) {
    case "done": {
      const following = stepAfter(i.operation, step);
      if (following) {
        const delay = result.delayMs ?? 0;
        const patch: Partial<Instance> = {
          ...result.patch,
          state: stateAt(i.operation, following),
          step: following,
          attempts: 0,
          nextRunAt: at(delay),
          lastError: undefined,
          updatedAt: now,
        };
        return {
          outcome: "advanced",
          patch,
          dispatchAt: at(delay),
          followUps: followUpsOf(i, { ...i, ...patch }, undefined),
        };
      }
      const patch = { ...result.patch, ...completion(i, now) };
      return {
        outcome: "completed",
        patch,
        followUps: followUpsOf(i, { ...i, ...patch }, "completed"),
      };
    }
    case "wait": {
      const delay = result.delayMs ?? limits.pollMs;
      return {
        outcome: "waiting",
        patch: { attempts: i.attempts + 1, nextRunAt: at(delay), updatedAt: now },
        dispatchAt: at(delay),
        followUps: [],
      };
    }
    case "retry": {
      const failures = (i.failures ?? 0) + 1;
      if (failures >= limits.maxFailures) {
        return failWith(
          i,
          `Gave up after ${failures} failed attempts. Last error: ${result.error.message}`,
          now,
        );
      }
      const delay = retryDelayMs(failures, {
        baseMs: limits.pollMs,
        retryAfterMs: result.error.retryAfterMs,
        random: limits.random,
      });
      return {
        outcome: "retrying",
        patch: {
          attempts: i.attempts + 1,
          failures,
          nextRunAt: at(delay),
          lastError: truncate(result.error.message),
          updatedAt: now,
        },
        dispatchAt: at(delay),
        followUps: [],
      };
    }
    case "fail":
      return failWith(i, result.message, now);
  }
}

/** The transition that ends an operation Failed (a permanent error, the budget, a dead letter). */
export function failWith(i: Instance, message: string, now: Date): Transition {
  const patch: Partial<Instance> = {
    state: "Failed",
    step: "failed",
    attempts: 0,
    nextRunAt: undefined,
    lastError: truncate(message),
    updatedAt: now,
  };
  return { outcome: "failed", patch, followUps: followUpsOf(i, { ...i, ...patch }, "failed") };
}

/** What the row gets when the operation's last step is done. */
function completion(i: Instance, now: Date): Partial<Instance> {
  const common = {
    state: TRANSITIONS[i.operation].ends,
    step: "done" as const,
    attempts: 0,
    nextRunAt: undefined,
    lastError: undefined,
    updatedAt: now,
  };
  switch (i.operation) {
    case "deprovision":
      return {
        ...common,
        privateIp: undefined,
        url: undefined,
        deploymentId: undefined,
        passwordSecret: undefined,
        pendingPasswordSecret: undefined,
        readyAt: undefined,
        pendingKeyId: undefined,
        hostVersion: undefined,
        pendingHostVersion: undefined,
        templateSpecId: undefined,
        lastSnapshotAt: undefined,
        unhealthySince: undefined,
        failedProbes: undefined,
      };
    case "provision":
      return {
        ...common,
        readyAt: now,
        hostVersion: i.pendingHostVersion ?? i.hostVersion,
        pendingHostVersion: undefined,
      };
    case "upgrade":
      return {
        ...common,
        hostVersion: i.pendingHostVersion ?? i.hostVersion,
        pendingHostVersion: undefined,
      };
    case "heal":
      return {
        ...common,
        healedAt: now,
        hostVersion: i.pendingHostVersion ?? i.hostVersion,
        pendingHostVersion: undefined,
      };
  }
}

/**
 * The follow-ups of a transition from `before` to `after`, derived from the two rows only (never
 * from who applies it): a route that appears or goes re-renders the gateway; a paid instance that
 * starts or stops occupying its plan slot syncs billing; the end of an operation notifies.
 */
function followUpsOf(
  before: Instance | undefined,
  after: Instance,
  ended: "completed" | "failed" | undefined,
): FollowUp[] {
  const out: FollowUp[] = [];
  const routedBefore = before !== undefined && isRoutable(before);
  if (routedBefore !== isRoutable(after)) out.push("gateway-sync");
  const occupiedBefore = before !== undefined && occupiesPlan(before.state);
  if (after.plan === "paid" && occupiedBefore !== occupiesPlan(after.state))
    out.push("billing-sync");
  if (ended === "completed") {
    if (after.operation === "provision") out.push("notify-ready");
    if (after.operation === "deprovision") out.push("notify-deleted");
    if (after.state === "Running") out.push("configure");
  }
  if (ended === "failed" && (after.operation === "upgrade" || after.operation === "heal"))
    out.push("notify-failed");
  if (ended && after.operation === "upgrade") out.push("rollout");
  return out;
}
