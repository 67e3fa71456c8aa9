/**
 * Applying an instance's desired alerting to its running Grafana host.
 *
 * A change writes a new desired version and schedules a `configure` message on the project's
 * session of the `provisioning` queue (`sessionId = ref`: it never races a provision or delete of
 * the same project), a couple of seconds out, with `messageId = configure:<ref>:<version>`.
 * Bursts coalesce: a message whose version is older than the desired one is done at once (the
 * newer version's message is on its way), and the handler always reads the latest state.
 *
 * The handler renders the whole alerting provisioning from state, skips a host that already has
 * exactly it (same hash), else pushes it by VM run command (the script swaps the file atomically
 * and reloads Grafana's provisioning on the VM itself), and records the applied version and hash.
 * A failed push leaves the previous file serving, records `lastConfigError`, and retries a bounded
 * number of times with backoff. An instance that is still being provisioned is waited for.
 */
import type { InvocationContext } from "@azure/functions";
import { z } from "zod";

import { runGrafanaHostScript } from "../azure/arm.js";
import { projectRefSchema } from "../http.js";
import { getInstance } from "../instances/store.js";
import type { Instance } from "../instances/model.js";
import type { Services } from "../services.js";
import { supabaseFor } from "../supabase/client.js";
import { logEvent } from "../telemetry.js";
import { pruneRecipients, readDesiredAlerting, type DesiredAlerting } from "./desired.js";
import { getAlertConfig, listAlertConfigs, updateAlertConfig, type AlertConfig } from "./store.js";

/** How far out a change's message is scheduled, so a burst of edits makes one push. */
export const COALESCE_MS = 2_000;
/** Failed pushes of one version before giving up (until the next change or nudge). */
export const MAX_PUSH_ATTEMPTS = 4;
/** How many times a message waits for an instance still being provisioned. */
export const MAX_WAITS = 240;
/** The host script waits up to 60 s for Grafana's reload; Azure adds its own overhead. */
export const PUSH_TIMEOUT_MS = 150_000;

export const configureMessageSchema = z.object({
  kind: z.literal("configure"),
  org: z.string().min(1).max(128),
  ref: projectRefSchema,
  version: z.number().int().min(0),
  attempt: z.number().int().min(0).max(1000).default(0),
  waits: z.number().int().min(0).max(100_000).default(0),
});
export type ConfigureMessage = z.infer<typeof configureMessageSchema>;

/** True for a `configure` message body (provisioning messages carry no `kind`). */
export function isConfigureMessage(body: unknown): boolean {
  return (
    typeof body === "object" && body !== null && (body as { kind?: unknown }).kind === "configure"
  );
}

export type ConfigureOutcome =
  | "invalid"
  | "superseded"
  | "unchanged"
  | "applied"
  | "failed"
  | "waiting"
  | "no_instance"
  | "not_running";

function messageId(m: ConfigureMessage, suffix?: string): string {
  const base = `configure:${m.ref}:${m.version}`;
  const tail = [m.attempt ? `a${m.attempt}` : "", m.waits ? `w${m.waits}` : "", suffix ?? ""]
    .filter(Boolean)
    .join(":");
  return tail ? `${base}:${tail}` : base;
}

async function dispatch(
  services: Services,
  m: ConfigureMessage,
  delayMs: number,
  suffix?: string,
): Promise<void> {
  const out = { body: m, messageId: messageId(m, suffix), sessionId: m.ref, subject: "configure" };
  if (delayMs > 0) {
    await services.bus.schedule(
      "provisioning",
      out,
      new Date(services.clock.now().getTime() + delayMs),
    );
  } else {
    await services.bus.send("provisioning", out);
  }
}

/** After a change to `version`: its message, a couple of seconds out (coalescing a burst). */
export async function scheduleConfigure(
  services: Services,
  org: string,
  ref: string,
  version: number,
): Promise<void> {
  await dispatch(
    services,
    { kind: "configure", org, ref, version, attempt: 0, waits: 0 },
    COALESCE_MS,
  );
}

/**
 * Asks for the desired alerting to be applied now (an instance that reached Running with
 * applied ≠ desired, a reconciler pass): one message for the current desired version, with its
 * own id so the queue's duplicate detection never drops it. Does nothing when the host already
 * has the desired version.
 */
export async function requestConfigurePush(
  services: Services,
  org: string,
  ref: string,
  opts: {
    /**
     * The host was (re)created (provision, heal, upgrade): what it serves is what cloud-init
     * gave it, so push even when the version says applied (the host script answers "unchanged"
     * at once when it already has it).
     */
    hostReplaced?: boolean;
  } = {},
): Promise<boolean> {
  const config = await getAlertConfig(services, org, ref);
  const version = config?.desiredVersion ?? 0;
  if (config && config.appliedVersion === version && !opts.hostReplaced) return false;
  await dispatch(
    services,
    { kind: "configure", org, ref, version, attempt: 0, waits: 0 },
    0,
    `n${services.clock.now().getTime().toString(36)}`,
  );
  return true;
}

const LIVE_PROVISIONING = new Set(["Requested", "Deploying", "Configuring", "Verifying"]);

function retryDelayMs(services: Services, attempt: number): number {
  const base = services.config.PROVISION_POLL_SECONDS * 1000;
  return Math.min(base * 2 ** attempt, 5 * 60_000);
}

/**
 * Records that the host of `instance`'s current operation serves `version` (pushed, or given by
 * cloud-init at boot: see `confirmBootedAlerting`).
 */
async function recordApplied(
  services: Services,
  instance: Pick<Instance, "org" | "ref" | "operationId">,
  version: number,
  hash: string,
): Promise<void> {
  await updateAlertConfig(services, instance.org, instance.ref, (current) => {
    if (current.appliedVersion !== undefined && current.appliedVersion > version) return undefined;
    return {
      ...current,
      appliedVersion: version,
      appliedHash: hash,
      appliedOperationId: instance.operationId,
      appliedAt: services.clock.now(),
      lastConfigError: undefined,
      lastConfigErrorAt: undefined,
      pushFailures: 0,
    };
  });
}

/**
 * A host that reached Running serves the alerting cloud-init gave it (the version and hash the
 * deploy recorded on the instance): record that as applied, then push only if the desired
 * configuration moved on meanwhile. A host whose boot configuration is not known (its deployment
 * was adopted after a crash) is pushed to (the host answers "unchanged" if it has it).
 */
export async function confirmBootedAlerting(
  services: Services,
  instance: Pick<Instance, "org" | "ref" | "operationId">,
  booted: { version: number; hash: string } | undefined,
): Promise<boolean> {
  if (!booted)
    return requestConfigurePush(services, instance.org, instance.ref, { hostReplaced: true });
  await recordApplied(services, instance, booted.version, booted.hash);
  return requestConfigurePush(services, instance.org, instance.ref);
}

async function recordFailure(
  services: Services,
  org: string,
  ref: string,
  version: number,
  message: string,
): Promise<AlertConfig> {
  const { config } = await updateAlertConfig(services, org, ref, (current) => ({
    ...current,
    lastConfigError: message.slice(0, 500),
    lastConfigErrorAt: services.clock.now(),
    pushFailures:
      current.desiredVersion === version ? current.pushFailures + 1 : current.pushFailures,
  }));
  return config;
}

function errorText(err: unknown): string {
  return err instanceof Error ? (err.message.split("\n")[0]?.slice(0, 300) ?? "") : "unknown error";
}

/** Renders, compares, pushes and records; the push outcome. */
async function push(
  services: Services,
  instance: Instance,
  m: ConfigureMessage,
  ctx: InvocationContext,
): Promise<ConfigureOutcome> {
  const { org, ref } = instance;
  let desired: DesiredAlerting;
  try {
    desired = await readDesiredAlerting(services, instance, ctx);
  } catch (err) {
    // Recipients unknown (Supabase unreachable): keep what the host has, try again later.
    return failed(
      services,
      m,
      ctx,
      org,
      ref,
      m.version,
      `The alert recipients could not be read: ${errorText(err)}`,
    );
  }
  const config = await getAlertConfig(services, org, ref);
  // Known to be on this host (deployed by the same operation): nothing to push.
  if (config?.appliedHash === desired.hash && config.appliedOperationId === instance.operationId) {
    if (config.appliedVersion !== desired.version)
      await recordApplied(services, instance, desired.version, desired.hash);
    return "unchanged";
  }
  const { renderAlertingPushScript, alertingPushOutcome } =
    await import("../grafana-host/alerting-push.js");
  let failure: string;
  try {
    const { message } = await runGrafanaHostScript(
      services,
      ref,
      renderAlertingPushScript(desired.document),
      { timeoutMs: PUSH_TIMEOUT_MS },
    );
    const outcome = alertingPushOutcome(message);
    if (outcome.ok) {
      await recordApplied(services, instance, desired.version, desired.hash);
      logEvent(ctx, "info", "applied the alerting provisioning to the Grafana host", {
        event: "alerts.configure",
        outcome: "applied",
        org,
        ref,
        version: desired.version,
        recipients: desired.alertEmails.length,
      });
      return "applied";
    }
    failure = `The Grafana host refused the alert configuration: ${outcome.message}`;
  } catch (err) {
    failure = `The alert configuration could not be pushed to the Grafana host: ${errorText(err)}`;
  }
  return failed(services, m, ctx, org, ref, desired.version, failure);
}

async function failed(
  services: Services,
  m: ConfigureMessage,
  ctx: InvocationContext,
  org: string,
  ref: string,
  version: number,
  failure: string,
): Promise<ConfigureOutcome> {
  const after = await recordFailure(services, org, ref, version, failure);
  const retry = after.desiredVersion === version && after.pushFailures < MAX_PUSH_ATTEMPTS;
  logEvent(ctx, "warn", "the alerting push failed; the previous configuration stays", {
    event: "alerts.configure",
    outcome: "failed",
    org,
    ref,
    version,
    failures: after.pushFailures,
    retry,
    error: failure.slice(0, 300),
  });
  if (retry) {
    const next = { ...m, version, attempt: m.attempt + 1 };
    await dispatch(services, next, retryDelayMs(services, m.attempt));
  }
  return "failed";
}

/** The `configure` consumer (routed from the `provisioning` queue). Never throws on bad input. */
export async function handleConfigureMessage(
  services: Services,
  body: unknown,
  ctx: InvocationContext,
): Promise<ConfigureOutcome> {
  const parsed = configureMessageSchema.safeParse(body);
  if (!parsed.success) {
    logEvent(ctx, "error", "configure message with an invalid body", {
      event: "alerts.configure",
      outcome: "invalid",
    });
    return "invalid";
  }
  const m = parsed.data;
  const config = await getAlertConfig(services, m.org, m.ref);
  const desired = config?.desiredVersion ?? 0;
  // A newer change has its own message on the way (or has run already).
  if (m.version < desired) return "superseded";
  const instance = await getInstance(services, m.org, m.ref);
  if (!instance || instance.state === "Deleted") return "no_instance";
  if (LIVE_PROVISIONING.has(instance.state)) {
    // Deployed from the desired state already, or about to be; once Running, push what is left.
    if (m.waits >= MAX_WAITS) return "not_running";
    await dispatch(
      services,
      { ...m, waits: m.waits + 1 },
      services.config.PROVISION_POLL_SECONDS * 1000,
    );
    return "waiting";
  }
  if (instance.state !== "Running") return "not_running";
  return push(services, instance, m, ctx);
}

/**
 * The dead letter of a `configure` message (its handler kept throwing, e.g. storage down):
 * visible as `lastConfigError`; the instance itself is left alone.
 */
export async function handleConfigureDeadLetter(
  services: Services,
  body: unknown,
  ctx: InvocationContext,
): Promise<void> {
  const parsed = configureMessageSchema.safeParse(body);
  if (!parsed.success) return;
  const m = parsed.data;
  await recordFailure(
    services,
    m.org,
    m.ref,
    m.version,
    "The alert configuration could not be applied (the message was dead-lettered); it is retried with the next change.",
  );
  logEvent(ctx, "error", "configure message dead-lettered", {
    event: "alerts.configure",
    outcome: "dead_lettered",
    org: m.org,
    ref: m.ref,
    version: m.version,
  });
}

/**
 * The daily sweep: drops recipients who left their Supabase org (each such instance gets a new
 * desired version and a push). One member-list read per org; an org whose list cannot be read is
 * skipped this time.
 */
export async function pruneDepartedRecipients(
  services: Services,
  ctx: InvocationContext,
): Promise<{ orgs: number; pruned: number; skipped: number }> {
  const byOrg = new Map<string, AlertConfig[]>();
  for (const c of await listAlertConfigs(services)) {
    if (!c.recipients?.length) continue;
    byOrg.set(c.org, [...(byOrg.get(c.org) ?? []), c]);
  }
  let pruned = 0;
  let skipped = 0;
  for (const [org, configs] of byOrg) {
    let members;
    try {
      members = await supabaseFor(services, org).listMembers();
    } catch (err) {
      skipped += 1;
      logEvent(ctx, "warn", "could not read the member list to prune alert recipients", {
        event: "alerts.recipients_pruned",
        org,
        error: errorText(err),
      });
      continue;
    }
    for (const c of configs) {
      const { config, dropped } = await pruneRecipients(services, org, c.ref, members);
      if (dropped.length === 0 || !config) continue;
      pruned += 1;
      await scheduleConfigure(services, org, c.ref, config.desiredVersion);
    }
  }
  return { orgs: byOrg.size, pruned, skipped };
}

/** `configVersion` and `lastConfigError` of an instance, for the API. */
export async function configStatus(
  services: Services,
  org: string,
  ref: string,
): Promise<{
  configVersion: { desired: number; applied: number | null };
  lastConfigError: string | null;
}> {
  const c = await getAlertConfig(services, org, ref);
  return {
    configVersion: { desired: c?.desiredVersion ?? 0, applied: c?.appliedVersion ?? null },
    lastConfigError: c?.lastConfigError ?? null,
  };
}

/** For the deploy step: the desired alerting as `renderCloudInit` input (see ./desired.ts). */
export { alertingForDeploy } from "./desired.js";
