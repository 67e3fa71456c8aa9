/**
 * The provisioning consumer: runs the current step of an instance's operation, turns its result
 * into a transition with the lifecycle's pure `next` (../instances/lifecycle.ts), saves that
 * (etag-conditionally) and only then sends the message of what comes next and runs the
 * transition's follow-ups.
 *
 * Convergence under crashes and redelivery: a message that is not the row's current
 * (operation, step, attempt) is stale; the consumer then re-sends the message of the current
 * position (the queue drops it as a duplicate if it was sent) and completes. Follow-ups are saved
 * with the transition and cleared once done, so a crash between "save" and "follow up" is healed
 * by the next delivery. A crash anywhere else re-runs an idempotent step.
 */
import type { InvocationContext } from "@azure/functions";

import { describeFailure } from "../azure/errors.js";
import {
  deadLetterMessage,
  failWith,
  next,
  overBudget,
  STEP_IDS,
  type Limits,
  type StepId,
  type StepResult,
  type Transition,
} from "../instances/lifecycle.js";
import type { Instance } from "../instances/model.js";
import { createInstance, getInstance, saveInstance } from "../instances/store.js";
import type { Services } from "../services.js";
import { isConflict } from "../storage/tables.js";
import { deadLetterInfo } from "../dead-letters.js";
import { logEvent } from "../telemetry.js";
import { runPendingFollowUps } from "./follow-ups.js";
import { logStep, redact, type StepLogFields } from "./log.js";
import {
  bodyAsJson,
  currentMessage,
  dispatchProvisioning,
  provisioningMessageSchema,
  type ProvisioningMessage,
} from "./messages.js";
import { STEPS, type StepEnv } from "./steps.js";

export type MessageOutcome = "invalid" | "superseded" | "finished" | "stale" | StepResult["kind"];

const MAX_ROUNDS = 4;

/**
 * The instance row changed since it was read (etag mismatch): read it again and decide again.
 * It carries the 412 of the lost write, so `retryOnConflict` retries it.
 */
export class RowMovedError extends Error {
  readonly statusCode = 412;
  constructor() {
    super("the instance row changed meanwhile");
    this.name = "RowMovedError";
  }
}

export function limitsOf(services: Services): Limits {
  const c = services.config;
  return {
    pollMs: c.PROVISION_POLL_SECONDS * 1000,
    maxFailures: c.PROVISION_MAX_ATTEMPTS,
    budgetMs: c.PROVISION_BUDGET_MINUTES * 60_000,
    random: Math.random,
  };
}

const isStep = (s: string): s is StepId => (STEP_IDS as readonly string[]).includes(s);

function fields(
  i: Instance,
  m: ProvisioningMessage,
  started: number,
  outcome: string,
): StepLogFields {
  return {
    operationId: m.operationId,
    ref: m.ref,
    org: m.org,
    step: m.step,
    attempt: m.attempt,
    durationMs: Math.round(performance.now() - started),
    operation: i.operation,
    state: i.state,
    outcome,
  };
}

export async function handleProvisioningMessage(
  services: Services,
  rawBody: unknown,
  ctx: InvocationContext,
): Promise<MessageOutcome> {
  const parsed = provisioningMessageSchema.safeParse(bodyAsJson(rawBody));
  if (!parsed.success) {
    logEvent(ctx, "warn", "provisioning message ignored: invalid body", {
      event: "provisioning.invalid",
    });
    return "invalid";
  }
  const m = parsed.data;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const started = performance.now();
    let instance = await getInstance(services, m.org, m.ref);
    if (!instance || instance.operationId !== m.operationId) {
      logEvent(ctx, "info", "provisioning message superseded", {
        event: "provisioning.step",
        operationId: m.operationId,
        ref: m.ref,
        org: m.org,
        step: m.step,
        attempt: m.attempt,
        durationMs: Math.round(performance.now() - started),
        outcome: "superseded",
      });
      return "superseded";
    }
    // Follow-ups a crash left behind run first (they are idempotent).
    if (instance.pendingFollowUps) {
      const after = await runPendingFollowUps(services, ctx, instance);
      if (!after) continue;
      instance = after;
    }
    const step = instance.step;
    if (!isStep(step)) {
      logStep(ctx, "info", "operation already finished", fields(instance, m, started, "finished"));
      return "finished";
    }
    if (step !== m.step || instance.attempts !== m.attempt) {
      // Stale (a duplicate, or a redelivery after the next step was persisted): make sure the
      // current step has its message; the queue drops it if it was already sent.
      await dispatchProvisioning(services, currentMessage(instance), instance.nextRunAt);
      logStep(ctx, "info", "stale provisioning message", {
        ...fields(instance, m, started, "stale"),
        nextStep: instance.step,
      });
      return "stale";
    }

    const env = makeEnv(services, ctx, instance);
    let result: StepResult;
    const budget = overBudget(instance, services.clock.now(), limitsOf(services));
    if (budget) {
      result = { kind: "fail", message: budget };
    } else {
      try {
        result = await STEPS[step](env);
      } catch (err) {
        if (err instanceof RowMovedError) continue; // the row moved under us: look again
        const info = describeFailure(err);
        if (info.unexpected) {
          logStep(ctx, "error", "provisioning step crashed", {
            ...fields(env.instance, m, started, "crashed"),
            error: redact(
              err instanceof Error ? `${err.name}: ${err.message}` : "unknown",
              env.secrets,
            ).slice(0, 300),
          });
          throw err;
        }
        result = info.transient
          ? { kind: "retry", error: { message: info.message, retryAfterMs: info.retryAfterMs } }
          : { kind: "fail", message: info.message };
      }
    }
    const redacted = redactResult(result, env.secrets);
    const transition = next(env.instance, redacted, services.clock.now(), limitsOf(services));
    try {
      await apply(env, transition, redacted, (outcome) =>
        fields(env.instance, m, started, outcome),
      );
      return result.kind;
    } catch (err) {
      if (err instanceof RowMovedError) continue;
      throw err;
    }
  }
  throw new Error("the instance kept changing while its step ran; the message will be redelivered");
}

function redactResult(result: StepResult, secrets: readonly string[]): StepResult {
  if (result.kind === "retry")
    return {
      ...result,
      error: { ...result.error, message: redact(result.error.message, secrets) },
    };
  if (result.kind === "fail") return { ...result, message: redact(result.message, secrets) };
  return result;
}

function makeEnv(services: Services, ctx: InvocationContext, instance: Instance): StepEnv {
  const env: StepEnv = {
    services,
    ctx,
    instance,
    attempt: instance.attempts,
    secrets: [],
    async record(patch) {
      env.instance = await saveOrMoved(services, {
        ...env.instance,
        ...patch,
        updatedAt: services.clock.now(),
      });
      return env.instance;
    },
  };
  return env;
}

/**
 * Saves the row etag-conditionally, or creates it when it was never saved (no etag); a lost race
 * on the row itself (412, or 409 on create) is a RowMovedError.
 */
async function saveOrMoved(services: Services, instance: Instance): Promise<Instance> {
  try {
    return instance.etag
      ? await saveInstance(services, instance)
      : await createInstance(services, instance);
  } catch (err) {
    // Only a lost race on the row itself; a 409/412 from Azure is an Azure failure.
    if (isConflict(err)) throw new RowMovedError();
    throw err;
  }
}

/**
 * Applies a transition: saves its patch with its follow-ups marked pending (creating the row when
 * `before` was never saved), sends the message of the next position, then runs the follow-ups
 * (which clears them).
 */
export async function applyTransition(
  services: Services,
  ctx: InvocationContext,
  before: Instance,
  transition: Pick<Transition, "patch" | "dispatchAt" | "followUps">,
): Promise<Instance> {
  let saved = await saveOrMoved(services, {
    ...before,
    ...transition.patch,
    pendingFollowUps: transition.followUps.length ? transition.followUps.join(",") : undefined,
  });
  if (transition.dispatchAt) {
    await dispatchProvisioning(services, currentMessage(saved), transition.dispatchAt);
  }
  if (saved.pendingFollowUps) saved = (await runPendingFollowUps(services, ctx, saved)) ?? saved;
  return saved;
}

async function apply(
  env: StepEnv,
  transition: Transition,
  result: StepResult,
  log: (outcome: string) => StepLogFields,
): Promise<void> {
  const { services, ctx } = env;
  const before = env.instance;
  const saved = await applyTransition(services, ctx, before, transition);
  const now = services.clock.now().getTime();
  const delayMs = transition.dispatchAt ? transition.dispatchAt.getTime() - now : undefined;
  switch (transition.outcome) {
    case "advanced":
      logStep(ctx, "info", "provisioning step done", {
        ...log("advanced"),
        state: saved.state,
        nextStep: saved.step,
        ...(delayMs !== undefined ? { delayMs } : {}),
      });
      return;
    case "waiting":
      logStep(
        ctx,
        "info",
        `provisioning step waiting: ${result.kind === "wait" ? result.why : ""}`,
        {
          ...log("waiting"),
          ...(delayMs !== undefined ? { delayMs } : {}),
        },
      );
      return;
    case "retrying":
      logStep(ctx, "warn", "provisioning step will be retried", {
        ...log("retrying"),
        ...(delayMs !== undefined ? { delayMs } : {}),
        ...(saved.lastError ? { error: saved.lastError } : {}),
      });
      return;
    case "completed":
      logStep(ctx, "info", saved.state === "Running" ? "instance running" : "instance deleted", {
        ...log(saved.state === "Running" ? "running" : "deleted"),
        state: saved.state,
        // The whole operation, request to end: the operation duration metric.
        operationDurationMs: now - before.operationStartedAt.getTime(),
      });
      return;
    case "failed":
      logStep(ctx, "error", "operation failed", {
        ...log("failed"),
        state: "Failed",
        ...(saved.lastError ? { error: saved.lastError } : {}),
        operationDurationMs: now - before.operationStartedAt.getTime(),
      });
      return;
  }
}

/**
 * Dead-lettered provisioning messages: the operation they drive is stopped as `Failed` (never
 * silently lost), with an operator-visible error.
 */
export async function handleProvisioningDeadLetter(
  services: Services,
  rawBody: unknown,
  ctx: InvocationContext,
): Promise<"failed" | "ignored"> {
  const parsed = provisioningMessageSchema.safeParse(bodyAsJson(rawBody));
  const { deadLetterReason, deadLetterDescription } = deadLetterInfo(ctx);
  if (!parsed.success) {
    logEvent(ctx, "error", "dead-lettered provisioning message with an invalid body", {
      event: "provisioning.dead_letter",
      deadLetterReason,
    });
    return "ignored";
  }
  const m = parsed.data;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const instance = await getInstance(services, m.org, m.ref);
    const base = {
      event: "provisioning.dead_letter",
      operationId: m.operationId,
      ref: m.ref,
      org: m.org,
      step: m.step,
      attempt: m.attempt,
      deadLetterReason,
      deadLetterDescription,
    };
    if (!instance || instance.operationId !== m.operationId || !isStep(instance.step)) {
      logEvent(
        ctx,
        "warn",
        "dead-lettered provisioning message for an operation that is over",
        base,
      );
      return "ignored";
    }
    try {
      await applyTransition(
        services,
        ctx,
        instance,
        failWith(instance, deadLetterMessage(instance), services.clock.now()),
      );
    } catch (err) {
      if (err instanceof RowMovedError) continue;
      throw err;
    }
    logEvent(ctx, "error", "provisioning operation dead-lettered and marked Failed", base);
    return "failed";
  }
  throw new Error("the instance kept changing; the dead letter will be redelivered");
}
