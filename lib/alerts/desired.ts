/**
 * An instance's desired alerting, resolved: the alert settings, who gets alert e-mail (verified
 * members still in the Supabase org, with an address), and the Grafana alerting provisioning
 * document rendered from them by the same pure renderer cloud-init uses at first boot.
 */
import type { InvocationContext } from "@azure/functions";

import { resolveAlertSettings, type AlertSettings } from "../grafana-host/alert-catalog.js";
import type { GrafanaHostInput, SmtpSettings } from "../grafana-host/types.js";
import type { Instance } from "../instances/model.js";
import type { Services } from "../services.js";
import { supabaseFor, type SupabaseMember } from "../supabase/client.js";
import { logEvent } from "../telemetry.js";
import { getAlertConfig, updateAlertConfig, type AlertConfig } from "./store.js";

/** SMTP for alert e-mail (the same relay cloud-init configures), when configured. */
export function smtpFromConfig(services: Services): SmtpSettings | undefined {
  const c = services.config;
  if (!c.SMTP_HOST || !c.SMTP_USER || !c.SMTP_PASSWORD || !c.SMTP_FROM_ADDRESS) return undefined;
  return {
    host: c.SMTP_HOST,
    port: c.SMTP_PORT,
    user: c.SMTP_USER,
    password: c.SMTP_PASSWORD,
    fromAddress: c.SMTP_FROM_ADDRESS,
  };
}

export const settingsOf = (config: AlertConfig | undefined): AlertSettings =>
  resolveAlertSettings(config?.settings);

/** The recipient ids as set, or (never set) whoever requested the instance. */
export function recipientIdsOf(
  config: AlertConfig | undefined,
  instance: Pick<Instance, "requestedBy"> | undefined,
): string[] {
  if (config?.recipients) return config.recipients;
  return instance?.requestedBy ? [instance.requestedBy] : [];
}

/**
 * Drops recipients who are no longer members of the org (one etag-conditional write, a new
 * desired version); answers the row afterwards and whether it changed.
 */
export async function pruneRecipients(
  services: Services,
  org: string,
  ref: string,
  members: readonly SupabaseMember[],
): Promise<{ config: AlertConfig | undefined; dropped: string[] }> {
  const ids = new Set(members.map((m) => m.userId));
  let dropped: string[] = [];
  const existing = await getAlertConfig(services, org, ref);
  if (!existing?.recipients?.some((r) => !ids.has(r))) return { config: existing, dropped };
  const { config } = await updateAlertConfig(services, org, ref, (current, exists) => {
    if (!exists || !current.recipients) return undefined;
    dropped = current.recipients.filter((r) => !ids.has(r));
    if (dropped.length === 0) return undefined;
    return {
      ...current,
      recipients: current.recipients.filter((r) => ids.has(r)),
      desiredVersion: current.desiredVersion + 1,
      pushFailures: 0,
    };
  });
  return { config, dropped };
}

export interface DesiredAlerting {
  version: number;
  settings: AlertSettings;
  /** Recipient addresses (members in the org with an e-mail), sorted. */
  alertEmails: string[];
  /** The whole alerting provisioning file. */
  document: string;
  hash: string;
}

/**
 * Reads the latest desired state of an instance (pruning departed recipients first) and renders
 * its alerting document. Throws when Supabase cannot be asked for the member list: without it the
 * recipients are unknown, and pushing a guess would drop everyone's alerts.
 */
export async function readDesiredAlerting(
  services: Services,
  instance: Instance,
  ctx?: InvocationContext,
): Promise<DesiredAlerting> {
  const members = await supabaseFor(services, instance.org).listMembers();
  const { config, dropped } = await pruneRecipients(services, instance.org, instance.ref, members);
  if (dropped.length > 0 && ctx) {
    logEvent(ctx, "info", "dropped alert recipients who left the organization", {
      event: "alerts.recipients_pruned",
      org: instance.org,
      ref: instance.ref,
      count: dropped.length,
    });
  }
  const byId = new Map(members.map((m) => [m.userId, m]));
  const alertEmails = [
    ...new Set(
      recipientIdsOf(config, instance)
        .map((id) => byId.get(id)?.email)
        .filter((e): e is string => Boolean(e)),
    ),
  ].sort();
  const settings = settingsOf(config);
  const { renderAlertRules } = await import("../grafana-host/alerts.js");
  const { alertingHash } = await import("../grafana-host/alerting-push.js");
  const smtp = smtpFromConfig(services);
  const document = renderAlertRules({
    ref: instance.ref,
    alertEmails,
    alerts: settings,
    ...(smtp ? { smtp } : {}),
  });
  return {
    version: config?.desiredVersion ?? 0,
    settings,
    alertEmails,
    document,
    hash: alertingHash(document),
  };
}

/**
 * What cloud-init needs at deploy time to start the host on the desired alerting (spread into
 * `renderCloudInit`'s input), plus the version it carries. A re-created host thus converges
 * without a push.
 */
export async function alertingForDeploy(
  services: Services,
  instance: Instance,
  ctx?: InvocationContext,
): Promise<
  Required<Pick<GrafanaHostInput, "alerts" | "alertEmails">> & { version: number; hash: string }
> {
  const d = await readDesiredAlerting(services, instance, ctx);
  return { alerts: d.settings, alertEmails: d.alertEmails, version: d.version, hash: d.hash };
}
