/**
 * What the alerts, recipients and notification routes do. The caller's org role is read from
 * the Supabase member list (cached briefly), not from the session: a demoted or departed member
 * loses their rights at the next read.
 */
import { badRequest, forbidden, notFound } from "../errors.js";
import {
  ALERT_CATALOG,
  applyAlertPatch,
  type AlertSettingsPatch,
} from "../grafana-host/alert-catalog.js";
import { GrafanaHostInputError } from "../grafana-host/types.js";
import { getInstance } from "../instances/store.js";
import type { Instance } from "../instances/model.js";
import { listVerifiedMembers, recordVerifiedMember } from "../notifications/preferences.js";
import type { Services } from "../services.js";
import { supabaseFor, type SupabaseMember } from "../supabase/client.js";
import { scheduleConfigure } from "./apply.js";
import { pruneRecipients, recipientIdsOf, settingsOf } from "./desired.js";
import { getAlertConfig, updateAlertConfig, type AlertConfig } from "./store.js";

const ADMIN_ROLES = new Set(["owner", "administrator"]);
export const isAdminRole = (role: string): boolean => ADMIN_ROLES.has(role.trim().toLowerCase());

export interface Caller {
  org: string;
  userId: string;
  member: SupabaseMember;
  members: SupabaseMember[];
  isAdmin: boolean;
}

/** The verified caller as the org knows them now; 403 when they are no longer a member. */
export async function resolveCaller(
  services: Services,
  session: { org: string; user: { id: string } },
): Promise<Caller> {
  const members = await supabaseFor(services, session.org).listMembers();
  const member = members.find((m) => m.userId === session.user.id);
  if (!member) throw forbidden("You are no longer a member of this organization.");
  await recordVerifiedMember(services, session.org, member.userId);
  return {
    org: session.org,
    userId: member.userId,
    member,
    members,
    isAdmin: isAdminRole(member.role),
  };
}

async function liveInstance(services: Services, org: string, ref: string): Promise<Instance> {
  const instance = await getInstance(services, org, ref);
  if (!instance || instance.state === "Deleted")
    throw notFound("This project has no Grafana instance.");
  return instance;
}

const versionOf = (c: AlertConfig | undefined) => ({
  desired: c?.desiredVersion ?? 0,
  applied: c?.appliedVersion ?? null,
});

export function alertsView(ref: string, config: AlertConfig | undefined, canEdit: boolean) {
  const settings = settingsOf(config);
  return {
    ref,
    alerts: ALERT_CATALOG.map((entry) => {
      const s = settings[entry.id];
      return {
        id: entry.id,
        title: entry.title,
        description: entry.description,
        enabled: s?.enabled ?? entry.defaultEnabled,
        params: entry.params.map((p) => ({
          name: p.name,
          label: p.label,
          unit: p.unit,
          value: s?.params[p.name] ?? p.default,
          default: p.default,
          min: p.min,
          max: p.max,
          step: p.step,
        })),
      };
    }),
    configVersion: versionOf(config),
    lastConfigError: config?.lastConfigError ?? null,
    canEdit,
  };
}
export type AlertsView = ReturnType<typeof alertsView>;

export async function getAlerts(
  services: Services,
  session: { org: string; user: { id: string } },
  ref: string,
): Promise<AlertsView> {
  await liveInstance(services, session.org, ref);
  const caller = await resolveCaller(services, session);
  return alertsView(ref, await getAlertConfig(services, session.org, ref), caller.isAdmin);
}

/** Admins only: applies a partial change, bumps the desired version, schedules the push. */
export async function patchAlerts(
  services: Services,
  session: { org: string; user: { id: string } },
  ref: string,
  patch: AlertSettingsPatch,
): Promise<AlertsView> {
  await liveInstance(services, session.org, ref);
  const caller = await resolveCaller(services, session);
  if (!caller.isAdmin)
    throw forbidden("Only an Owner or Administrator of the organization can change alerts.");
  const { config, changed } = await updateAlertConfig(services, session.org, ref, (current) => {
    let settings;
    try {
      settings = applyAlertPatch(patch, settingsOf(current));
    } catch (err) {
      if (err instanceof GrafanaHostInputError) throw badRequest(err.message);
      throw err;
    }
    if (JSON.stringify(settings) === JSON.stringify(settingsOf(current)) && current.settings)
      return undefined;
    return {
      ...current,
      settings,
      desiredVersion: current.desiredVersion + 1,
      pushFailures: 0,
    };
  });
  if (changed) await scheduleConfigure(services, session.org, ref, config.desiredVersion);
  return alertsView(ref, config, true);
}

export interface RecipientsView {
  ref: string;
  recipients: Array<{ userId: string; email: string | null; name: string; role: string }>;
  members: Array<{
    userId: string;
    email: string | null;
    name: string;
    role: string;
    verified: boolean;
    recipient: boolean;
  }>;
  configVersion: { desired: number; applied: number | null };
  canEditOthers: boolean;
  me: string;
}

function recipientsView(
  ref: string,
  caller: Caller,
  verified: Set<string>,
  config: AlertConfig | undefined,
  instance: Instance,
): RecipientsView {
  const ids = new Set(recipientIdsOf(config, instance));
  const members = caller.members.filter((m) => ids.has(m.userId));
  return {
    ref,
    recipients: members.map((m) => ({
      userId: m.userId,
      email: m.email,
      name: m.name,
      role: m.role,
    })),
    members: caller.members.map((m) => ({
      userId: m.userId,
      email: m.email,
      name: m.name,
      role: m.role,
      verified: verified.has(m.userId),
      recipient: ids.has(m.userId),
    })),
    configVersion: versionOf(config),
    canEditOthers: caller.isAdmin,
    me: caller.userId,
  };
}

/** The recipients as they are after this membership read (departed members dropped). */
export async function getRecipients(
  services: Services,
  session: { org: string; user: { id: string } },
  ref: string,
): Promise<RecipientsView> {
  const instance = await liveInstance(services, session.org, ref);
  const caller = await resolveCaller(services, session);
  const { config, dropped } = await pruneRecipients(services, session.org, ref, caller.members);
  if (dropped.length > 0 && config)
    await scheduleConfigure(services, session.org, ref, config.desiredVersion);
  const verified = await listVerifiedMembers(services, session.org);
  return recipientsView(ref, caller, verified, config, instance);
}

/**
 * Replaces the recipient list. Admins may set any verified members; anyone else may only add or
 * remove themselves.
 */
export async function putRecipients(
  services: Services,
  session: { org: string; user: { id: string } },
  ref: string,
  userIds: string[],
): Promise<RecipientsView> {
  const instance = await liveInstance(services, session.org, ref);
  const caller = await resolveCaller(services, session);
  const wanted = [...new Set(userIds)];
  const memberIds = new Set(caller.members.map((m) => m.userId));
  const verified = await listVerifiedMembers(services, session.org);
  const { config, changed } = await updateAlertConfig(services, session.org, ref, (current) => {
    // Departed members are not part of the comparison: they go whatever the caller says.
    const before = recipientIdsOf(current, instance).filter((id) => memberIds.has(id));
    const added = wanted.filter((id) => !before.includes(id));
    const removed = before.filter((id) => !wanted.includes(id));
    if (!caller.isAdmin && [...added, ...removed].some((id) => id !== caller.userId)) {
      throw forbidden("You can add or remove only yourself; ask an Owner or Administrator.");
    }
    const bad = added.find((id) => !memberIds.has(id) || !verified.has(id));
    if (bad !== undefined) {
      throw badRequest(
        `${JSON.stringify(bad)} is not a verified member of this organization (members verify themselves by e-mail before they can get alerts).`,
      );
    }
    const next = before.filter((id) => wanted.includes(id)).concat(added);
    const stored = current.recipients;
    if (stored && stored.length === next.length && stored.every((id, i) => id === next[i]))
      return undefined;
    return {
      ...current,
      recipients: next,
      desiredVersion: current.desiredVersion + 1,
      pushFailures: 0,
    };
  });
  if (changed) await scheduleConfigure(services, session.org, ref, config.desiredVersion);
  return recipientsView(ref, caller, verified, config, instance);
}
