/**
 * The provisioning consumer: runs the current step of an instance's operation and persists its
 * outcome before sending the message of what comes next.
 *
 * Convergence under crashes and redelivery: a message that is not the row's current
 * (operation, step, attempt) is stale; the consumer then re-sends the message of the current
 * position (the queue drops it as a duplicate if it was sent) and completes. So a crash between
 * "persist" and "send" heals on the redelivery, and a crash anywhere else re-runs an idempotent
 * step. Waits are scheduled messages; transient failures back off exponentially (honouring
 * Retry-After) within the operation's budget of failures and wall time, then the instance is
 * `Failed` with a readable `lastError`.
 */
import type { InvocationContext } from "@azure/functions";

import { describeFailure, truncate, type FailureInfo } from "../azure/errors.js";
import { syncSubscriptionQuantity } from "../billing/subscription.js";
import { requestGatewaySync, ROUTABLE_STATES } from "../gateway/consumer.js";
import {
  getInstance,
  saveInstance,
  type Instance,
  type InstanceState,
} from "../instances/store.js";
import type { Services } from "../services.js";
import { isConflict } from "../storage/tables.js";
import { retryDelayMs } from "./backoff.js";
import { logStep, redact, type StepLogFields } from "./log.js";
import {
  bodyAsJson,
  currentMessage,
  dispatchProvisioning,
  provisioningMessageSchema,
  type ProvisioningMessage,
} from "./messages.js";
import { STEPS, type StepEnv, type StepResult } from "./steps.js";
import { deadLetterInfo } from "../dead-letters.js";
import { logEvent } from "../telemetry.js";

export const TERMINAL_STATES: readonly InstanceState[] = ["Running", "Deleted", "Failed"];
export const isTerminal = (s: InstanceState) => TERMINAL_STATES.includes(s);

export type MessageOutcome = "invalid" | "superseded" | "finished" | "stale" | StepResult["kind"];

const MAX_ROUNDS = 4;

/** The instance row changed since it was read (etag mismatch): read it again and decide again. */
export class RowMovedError extends Error {
  constructor() {
    super("the instance row changed meanwhile");
    this.name = "RowMovedError";
  }
}

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
    const instance = await getInstance(services, m.org, m.ref);
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
    if (isTerminal(instance.state)) {
      logStep(ctx, "info", "operation already finished", fields(instance, m, started, "finished"));
      return "finished";
    }
    if (instance.step !== m.step || instance.attempts !== m.attempt) {
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
    const budget = overBudget(services, instance);
    if (budget) {
      result = { kind: "fail", message: budget };
    } else {
      const step = STEPS[instance.step];
      try {
        result = step
          ? await step(env)
          : { kind: "fail", message: `Unknown step "${instance.step}".` };
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
          ? { kind: "retry", error: info }
          : { kind: "fail", message: info.message };
      }
    }
    try {
      await apply(env, m, result, started);
      return result.kind;
    } catch (err) {
      if (err instanceof RowMovedError) continue;
      throw err;
    }
  }
  throw new Error("the instance kept changing while its step ran; the message will be redelivered");
}

function makeEnv(services: Services, ctx: InvocationContext, instance: Instance): StepEnv {
  const env: StepEnv = {
    services,
    ctx,
    instance,
    attempt: instance.attempts,
    secrets: [],
    async save(patch) {
      try {
        env.instance = await saveInstance(services, {
          ...env.instance,
          ...patch,
          updatedAt: services.clock.now(),
        });
      } catch (err) {
        // Only a lost race on the row itself; a 409/412 from Azure is an Azure failure.
        if (isConflict(err)) throw new RowMovedError();
        throw err;
      }
      return env.instance;
    },
  };
  return env;
}

/** A readable reason when the operation has used up its budget, else undefined. */
function overBudget(services: Services, i: Instance): string | undefined {
  const c = services.config;
  const elapsed = services.clock.now().getTime() - i.operationStartedAt.getTime();
  if (elapsed <= c.PROVISION_BUDGET_MINUTES * 60_000) return undefined;
  const what = i.operation === "deprovision" ? "Deprovisioning" : "Provisioning";
  const last = i.lastError ? ` Last error: ${i.lastError}` : "";
  return truncate(
    `${what} did not finish within ${c.PROVISION_BUDGET_MINUTES} minutes.${last}`,
    500,
  );
}

async function apply(
  env: StepEnv,
  m: ProvisioningMessage,
  result: StepResult,
  started: number,
): Promise<void> {
  const { services, ctx } = env;
  const i = env.instance;
  const now = services.clock.now();
  const pollMs = services.config.PROVISION_POLL_SECONDS * 1000;
  const log = (outcome: string) => fields(i, m, started, outcome);

  switch (result.kind) {
    case "advance": {
      const delay = result.delayMs ?? 0;
      const saved = await env.save({
        ...result.patch,
        state: result.state,
        step: result.step,
        attempts: 0,
        nextRunAt: new Date(now.getTime() + delay),
        lastError: undefined,
      });
      await dispatchProvisioning(services, currentMessage(saved), saved.nextRunAt);
      logStep(ctx, "info", "provisioning step done", {
        ...log("advanced"),
        state: saved.state,
        nextStep: saved.step,
        delayMs: delay,
      });
      return;
    }
    case "wait": {
      const delay = result.delayMs ?? pollMs;
      const saved = await env.save({
        attempts: i.attempts + 1,
        nextRunAt: new Date(now.getTime() + delay),
      });
      await dispatchProvisioning(services, currentMessage(saved), saved.nextRunAt);
      logStep(ctx, "info", `provisioning step waiting: ${result.why}`, {
        ...log("waiting"),
        delayMs: delay,
      });
      return;
    }
    case "retry": {
      const failures = (i.failures ?? 0) + 1;
      const message = redact(result.error.message, env.secrets);
      if (failures >= services.config.PROVISION_MAX_ATTEMPTS) {
        await fail(
          env,
          m,
          started,
          truncate(`Gave up after ${failures} failed attempts. Last error: ${message}`, 500),
        );
        return;
      }
      const delay = retryDelayMs(failures, {
        baseMs: pollMs,
        retryAfterMs: result.error.retryAfterMs,
      });
      const saved = await env.save({
        attempts: i.attempts + 1,
        failures,
        nextRunAt: new Date(now.getTime() + delay),
        lastError: message,
      });
      await dispatchProvisioning(services, currentMessage(saved), saved.nextRunAt);
      logStep(ctx, "warn", "provisioning step will be retried", {
        ...log("retrying"),
        delayMs: delay,
        error: message,
      });
      return;
    }
    case "complete": {
      const saved = await env.save({
        ...result.patch,
        state: result.state,
        step: "done",
        attempts: 0,
        nextRunAt: undefined,
        lastError: undefined,
      });
      logStep(ctx, "info", result.state === "Running" ? "instance running" : "instance deleted", {
        ...log(result.state === "Running" ? "running" : "deleted"),
        state: saved.state,
        // The whole operation, request to end: the provision/deprovision duration metric.
        operationDurationMs: now.getTime() - i.operationStartedAt.getTime(),
      });
      if (result.state === "Deleted") await afterLeavingLive(env, i, saved);
      return;
    }
    case "fail":
      await fail(env, m, started, redact(result.message, env.secrets));
      return;
  }
}

async function fail(
  env: StepEnv,
  m: ProvisioningMessage,
  started: number,
  message: string,
): Promise<void> {
  const before = env.instance;
  const saved = await env.save({
    state: "Failed",
    step: "failed",
    attempts: 0,
    nextRunAt: undefined,
    lastError: truncate(message, 500),
  });
  logStep(env.ctx, "error", "operation failed", {
    ...fields(before, m, started, "failed"),
    state: "Failed",
    error: saved.lastError,
    operationDurationMs: env.services.clock.now().getTime() - before.operationStartedAt.getTime(),
  });
  await afterLeavingLive(env, before, saved);
}

/** Best-effort follow-ups of an instance that stops serving: gateway route, billing quantity. */
export async function afterLeavingLive(
  env: Pick<StepEnv, "services" | "ctx">,
  before: Instance,
  after: Instance,
): Promise<void> {
  const { services, ctx } = env;
  if (
    before.privateIp &&
    ROUTABLE_STATES.includes(before.state) &&
    !ROUTABLE_STATES.includes(after.state)
  ) {
    await requestGatewaySync(services, `unroute ${after.ref}`).catch((err: unknown) => {
      logEvent(ctx, "warn", "could not request a gateway update", {
        event: "provisioning.gateway_request_failed",
        ref: after.ref,
        error: err instanceof Error ? err.message.slice(0, 200) : "unknown",
      });
    });
  }
  if (after.plan === "paid") await syncBilling(services, ctx, after.org);
}

export async function syncBilling(
  services: Services,
  ctx: InvocationContext,
  org: string,
): Promise<void> {
  try {
    await syncSubscriptionQuantity(services, org);
  } catch (err) {
    logEvent(
      ctx,
      "warn",
      "could not sync the subscription quantity (the billing reconciliation will)",
      {
        event: "provisioning.billing_sync_failed",
        org,
        error: err instanceof Error ? err.message.slice(0, 200) : "unknown",
      },
    );
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
    const started = performance.now();
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
    if (!instance || instance.operationId !== m.operationId || isTerminal(instance.state)) {
      logEvent(
        ctx,
        "warn",
        "dead-lettered provisioning message for an operation that is over",
        base,
      );
      return "ignored";
    }
    const env = makeEnv(services, ctx, instance);
    const what = instance.operation === "deprovision" ? "Deprovisioning" : "Provisioning";
    try {
      await fail(
        env,
        m,
        started,
        `${what} stopped after repeated internal errors at step "${instance.step}". Try again; if it keeps failing, contact support.`,
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

export type { FailureInfo };
