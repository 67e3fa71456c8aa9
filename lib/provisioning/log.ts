/**
 * Structured logs of the pipeline. Every step transition is one entry with the same stable
 * fields, so an operation's trail can be rebuilt from the logs by `operationId`. Secrets never
 * reach these objects: callers pass only ids, names, states and readable error messages.
 */
import type { InvocationContext } from "@azure/functions";

import { logEvent } from "../telemetry.js";

export interface StepLogFields {
  operationId: string;
  ref: string;
  org: string;
  step: string;
  attempt: number;
  durationMs: number;
  operation?: string;
  state?: string;
  /** advanced | waiting | retrying | running | deleted | failed | stale | superseded | … */
  outcome: string;
  nextStep?: string;
  delayMs?: number;
  error?: string;
  /** On the last entry of an operation: from the request to its end. */
  operationDurationMs?: number;
}

export type LogLevel = "info" | "warn" | "error";

export function logStep(
  ctx: InvocationContext,
  level: LogLevel,
  message: string,
  fields: StepLogFields,
): void {
  logEvent(ctx, level, message, { event: "provisioning.step", ...fields });
}

/** Replaces every occurrence of the given secrets (service key, passwords) in a text. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s.length >= 4) out = out.split(s).join("[redacted]");
  return out;
}
