/**
 * Structured telemetry through the invocation context. Each entry is a readable message followed
 * by one JSON object with stable fields (`event`, `operationId`, `ref`, `org`, `step`, `attempt`,
 * `durationMs`, …). The Functions host sends it to Application Insights as a trace, where
 * `parse_json(substring(message, indexof(message, "{")))` recovers the fields (see the README's
 * Kusto queries). Events double as custom metrics: provision durations, failures by step, webhook
 * outcomes, Supabase 429s. Never put secrets in the fields.
 */
import type { InvocationContext } from "@azure/functions";

export type TelemetryLevel = "info" | "warn" | "error";

export type TelemetryEvent =
  | "provisioning.step"
  | "provisioning.dead_letter"
  | "provisioning.completed"
  | "provisioning.failed"
  | "gateway.push"
  | "gateway.dead_letter"
  | "reconciler.report"
  | "reconciler.error"
  | "webhook.outcome"
  | "supabase.rate_limited"
  | (string & {});

export interface TelemetryFields {
  event: TelemetryEvent;
  [key: string]: unknown;
}

export function logEvent(
  ctx: Pick<InvocationContext, "log" | "warn" | "error">,
  level: TelemetryLevel,
  message: string,
  fields: TelemetryFields,
): void {
  const json = JSON.stringify(fields);
  if (level === "error") ctx.error(message, json);
  else if (level === "warn") ctx.warn(message, json);
  else ctx.log(message, json);
}

/** Reads the fields back from a captured log call's arguments (tests, local tooling). */
export function parseEvent(args: readonly unknown[]): TelemetryFields | undefined {
  const raw = args[1];
  if (typeof raw === "string" && raw.startsWith("{")) {
    try {
      const parsed = JSON.parse(raw) as unknown;
      if (typeof parsed === "object" && parsed !== null && "event" in parsed)
        return parsed as TelemetryFields;
    } catch {
      return undefined;
    }
  }
  if (typeof raw === "object" && raw !== null && "event" in raw) return raw as TelemetryFields;
  return undefined;
}

/**
 * For code that runs outside any one invocation (shared clients): written to the worker's
 * stderr, which the Functions host forwards to Application Insights as a trace.
 */
export function logProcessEvent(message: string, fields: TelemetryFields): void {
  console.warn(`${message} ${JSON.stringify(fields)}`);
}
