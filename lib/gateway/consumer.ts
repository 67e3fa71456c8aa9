/**
 * The gateway consumer: renders the whole nginx config from the instances table and pushes it
 * to the gateway VM with a run command when it differs from the applied one.
 *
 * All gateway messages share one session ("gateway"), so pushes are serialized. Bursts coalesce
 * three ways: messages are sent with a short scheduled delay, so the changes of a burst land
 * together; a message requested before the start of the last render (`coveredUntil`) is
 * already reflected in the served config and completes without work; and pushes are at least
 * `MIN_PUSH_INTERVAL_MS` apart (a message that comes sooner waits once, then covers everything
 * that changed meanwhile). A config equal to the applied one (same hash) is never pushed.
 *
 * A push that the VM refuses (`nginx -t` or reload failed: the script keeps the previous config
 * serving) fails the message, which the queue redelivers. Transient ARM failures are retried by
 * a scheduled message with backoff, so a throttled gateway never burns the delivery count.
 */
import { randomUUID } from "node:crypto";

import type { InvocationContext } from "@azure/functions";
import { z } from "zod";

import { runGatewayScript } from "../azure/arm.js";
import { describeFailure } from "../azure/errors.js";
import { listAllInstances } from "../instances/store.js";
import { ROUTABLE_STATES } from "../instances/lifecycle.js";
import { retryDelayMs } from "../provisioning/backoff.js";
import { bodyAsJson } from "../provisioning/messages.js";
import type { Services } from "../services.js";
import { retryOnConflict } from "../storage/tables.js";
import {
  gatewayConfigHash,
  isValidIpv4,
  isValidRef,
  renderGatewayConfig,
  type GatewayRoute,
} from "./nginx.js";
import { FAILED_MARKER, parseAppliedHash, renderGatewayPushScript } from "./push-script.js";
import { renderSigninScript, signinScriptFileName } from "./signin-njs.js";
import { readGatewayState, readRevocations, saveGatewayState, type GatewayState } from "./state.js";
import { deadLetterInfo } from "../dead-letters.js";
import { logEvent } from "../telemetry.js";

const GATEWAY_SESSION = "gateway";
/** Messages wait this long before delivery, so a burst of changes is pushed once. */
export const GATEWAY_COALESCE_MS = 2_000;
/**
 * Pushes are at least this far apart: a message that comes sooner after the last push waits
 * (once) until then, so a long burst of changes costs a push per interval, not one per change.
 */
export const MIN_PUSH_INTERVAL_MS = 10_000;
/** Clock skew allowance between the writer of a change and the gateway consumer. */
export const COVERAGE_MARGIN_MS = 500;
/** Longest wait for one run command (the queue's lock is two minutes). */
const PUSH_TIMEOUT_MS = 90_000;
const MAX_TRANSIENT_RETRIES = 8;

export const gatewayMessageSchema = z.object({
  requestedAt: z.iso.datetime(),
  reason: z.string().max(200).optional(),
  attempt: z.number().int().min(0).max(1000).optional(),
  /** Set once the message has waited for the push interval (it never waits twice). */
  deferred: z.boolean().optional(),
});
export type GatewayMessage = z.infer<typeof gatewayMessageSchema>;

/**
 * Asks the gateway to converge to the table. Call it after the change is persisted: the
 * request time must not precede the change.
 */
export async function requestGatewaySync(
  services: Services,
  reason: string,
  opts: { delayMs?: number } = {},
): Promise<void> {
  const message: GatewayMessage = {
    requestedAt: services.clock.now().toISOString(),
    reason: reason.slice(0, 200),
  };
  const out = { body: message, messageId: randomUUID(), sessionId: GATEWAY_SESSION };
  const delay = opts.delayMs ?? GATEWAY_COALESCE_MS;
  if (delay > 0)
    await services.bus.schedule("gateway", out, new Date(services.clock.now().getTime() + delay));
  else await services.bus.send("gateway", out);
}

/** Routes of every routable instance; rows that could not be rendered are skipped and reported. */
export async function gatewayRoutes(services: Services): Promise<{
  routes: GatewayRoute[];
  skipped: string[];
  /** Per routed ref: its sign-in revocation moment (epoch seconds), when its org has one. */
  notBefore: Map<string, number>;
}> {
  const instances = await listAllInstances(services, ROUTABLE_STATES);
  const byRef = new Map<string, { route: GatewayRoute; updatedAt: number; org: string }>();
  const skipped: string[] = [];
  for (const i of instances) {
    if (!i.privateIp) continue;
    if (!isValidRef(i.ref) || !isValidIpv4(i.privateIp)) {
      skipped.push(i.ref);
      continue;
    }
    const updatedAt = i.updatedAt.getTime();
    const seen = byRef.get(i.ref);
    if (!seen || seen.updatedAt < updatedAt)
      byRef.set(i.ref, { route: { ref: i.ref, privateIp: i.privateIp }, updatedAt, org: i.org });
  }
  const revoked = await readRevocations(services);
  const notBefore = new Map<string, number>();
  for (const [ref, v] of byRef) {
    const at = revoked.get(v.org);
    if (at !== undefined) notBefore.set(ref, at);
  }
  return { routes: [...byRef.values()].map((v) => v.route), skipped, notBefore };
}

/** The sign-in njs module for this deployment and where it goes on the gateway VM. */
export function gatewaySigninScript(services: Services): { path: string; content: string } {
  const { signin } = services.ports.gatewayHost;
  const content = renderSigninScript({
    keysPath: signin.keysPath,
    usedTicketsDir: signin.usedTicketsDir,
    appUrl: services.config.PUBLIC_BASE_URL,
  });
  return { path: `${signin.scriptDir}/${signinScriptFileName(content)}`, content };
}

function renderForGateway(
  services: Services,
  routes: readonly GatewayRoute[],
  notBefore: ReadonlyMap<string, number> = new Map(),
): string {
  const host = services.ports.gatewayHost;
  return renderGatewayConfig(routes, {
    domain: services.config.GRAFANA_DOMAIN,
    ...host.render,
    signin: {
      scriptPath: gatewaySigninScript(services).path,
      notBefore,
      ...(host.signin.njsModulePath ? { njsModulePath: host.signin.njsModulePath } : {}),
    },
  });
}

export type GatewayOutcome =
  "covered" | "deferred" | "unchanged" | "pushed" | "retrying" | "invalid";

function failureLine(output: string): string {
  const line = output.split("\n").find((l) => l.includes(FAILED_MARKER));
  return (line ?? "the push script did not confirm the new config").slice(0, 300);
}

export class GatewayPushError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GatewayPushError";
  }
}

export async function handleGatewayMessage(
  services: Services,
  rawBody: unknown,
  ctx: InvocationContext,
): Promise<GatewayOutcome> {
  const started = performance.now();
  const parsed = gatewayMessageSchema.safeParse(bodyAsJson(rawBody));
  if (!parsed.success) {
    logEvent(ctx, "warn", "gateway message ignored: invalid body", { event: "gateway.invalid" });
    return "invalid";
  }
  const message = parsed.data;
  const requestedAt = new Date(message.requestedAt);

  let state: GatewayState = await readGatewayState(services);
  if (
    state.coveredUntil &&
    requestedAt.getTime() < state.coveredUntil.getTime() - COVERAGE_MARGIN_MS
  ) {
    logEvent(ctx, "info", "gateway message already covered", {
      event: "gateway.covered",
      reason: message.reason,
    });
    return "covered";
  }

  const sinceLastPush = state.appliedAt
    ? services.clock.now().getTime() - state.appliedAt.getTime()
    : Infinity;
  if (!message.deferred && sinceLastPush < MIN_PUSH_INTERVAL_MS) {
    const wait = MIN_PUSH_INTERVAL_MS - sinceLastPush;
    await services.bus.schedule(
      "gateway",
      { body: { ...message, deferred: true }, messageId: randomUUID(), sessionId: GATEWAY_SESSION },
      new Date(services.clock.now().getTime() + wait),
    );
    logEvent(ctx, "info", "gateway message waits for the push interval", {
      event: "gateway.deferred",
      delayMs: wait,
    });
    return "deferred";
  }

  const renderStart = services.clock.now();
  const { routes, skipped, notBefore } = await gatewayRoutes(services);
  if (skipped.length) {
    logEvent(ctx, "warn", "gateway: instances skipped (invalid ref or IP)", {
      event: "gateway.skipped",
      refs: skipped.slice(0, 20),
    });
  }
  const config = renderForGateway(services, routes, notBefore);
  const hash = gatewayConfigHash(config);

  if (hash === state.hash) {
    await saveCoverage(services, state, { coveredUntil: renderStart });
    logEvent(ctx, "info", "gateway config unchanged", {
      event: "gateway.unchanged",
      routes: routes.length,
      durationMs: Math.round(performance.now() - started),
    });
    return "unchanged";
  }

  const script = renderGatewayPushScript(config, {
    ...services.ports.gatewayHost.push,
    assets: [gatewaySigninScript(services)],
  });
  let output: string;
  try {
    output = (await runGatewayScript(services, script, { timeoutMs: PUSH_TIMEOUT_MS })).message;
  } catch (err) {
    const info = describeFailure(err);
    const attempt = (message.attempt ?? 0) + 1;
    if (info.unexpected || !info.transient || attempt > MAX_TRANSIENT_RETRIES) throw err;
    const delayMs = retryDelayMs(attempt, {
      baseMs: services.config.PROVISION_POLL_SECONDS * 1000,
      retryAfterMs: info.retryAfterMs,
    });
    await services.bus.schedule(
      "gateway",
      {
        body: { ...message, attempt, deferred: true },
        messageId: randomUUID(),
        sessionId: GATEWAY_SESSION,
      },
      new Date(services.clock.now().getTime() + delayMs),
    );
    logEvent(ctx, "warn", "gateway push will be retried", {
      event: "gateway.retrying",
      attempt,
      delayMs,
      error: info.message,
    });
    return "retrying";
  }

  const applied = parseAppliedHash(output);
  if (applied !== hash) {
    const why = failureLine(output);
    logEvent(ctx, "error", "gateway push failed; the previous config keeps serving", {
      event: "gateway.push_failed",
      routes: routes.length,
      error: why,
    });
    throw new GatewayPushError(`gateway push failed: ${why}`);
  }

  state = await saveCoverage(services, state, {
    coveredUntil: renderStart,
    pushed: { hash, routes: routes.length, appliedAt: services.clock.now() },
  });
  logEvent(ctx, "info", "gateway config pushed", {
    event: "gateway.pushed",
    routes: routes.length,
    pushes: state.pushes,
    durationMs: Math.round(performance.now() - started),
  });
  return "pushed";
}

interface CoverageUpdate {
  coveredUntil: Date;
  pushed?: { hash: string; routes: number; appliedAt: Date };
}

/** Saves the row; on a lost race re-reads and applies the update again (coverage never moves back). */
async function saveCoverage(
  services: Services,
  state: GatewayState,
  update: CoverageUpdate,
): Promise<GatewayState> {
  let current = state;
  return retryOnConflict(
    async (round) => {
      if (round > 0) current = await readGatewayState(services);
      const coveredUntil =
        current.coveredUntil && current.coveredUntil > update.coveredUntil
          ? current.coveredUntil
          : update.coveredUntil;
      return saveGatewayState(services, {
        ...current,
        coveredUntil,
        ...(update.pushed ? { ...update.pushed, pushes: current.pushes + 1 } : {}),
      });
    },
    { exhausted: () => current },
  );
}

/** The gateway's dead letters: nothing to repair automatically (the next change or the
 * reconciler pushes again); an operator must look at why pushes keep failing. */
export function reportGatewayDeadLetter(rawBody: unknown, ctx: InvocationContext): void {
  const parsed = gatewayMessageSchema.safeParse(bodyAsJson(rawBody));
  const { deadLetterReason } = deadLetterInfo(ctx);
  logEvent(ctx, "error", "gateway message dead-lettered: pushes to the gateway VM keep failing", {
    event: "gateway.dead_letter",
    reason: parsed.success ? parsed.data.reason : undefined,
    deadLetterReason,
  });
}
