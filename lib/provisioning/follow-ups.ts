/**
 * What follows a saved transition of the lifecycle (see `FollowUp` in ../instances/lifecycle.ts):
 * re-rendering the gateway, syncing the billing quantity, e-mailing the requester, pushing the
 * alerting configuration, moving a rollout on. Each is idempotent (e-mails carry an idempotency
 * key per operation), so running one twice after a crash is harmless. The transition saves them
 * as `pendingFollowUps`; those that succeed are cleared, those that fail stay for the next
 * delivery or the reconciler.
 */
import type { InvocationContext } from "@azure/functions";

import { syncSubscriptionQuantity } from "../billing/subscription.js";
import { requestGatewaySync } from "../gateway/consumer.js";
import { FOLLOW_UPS, type FollowUp } from "../instances/lifecycle.js";
import type { Instance } from "../instances/model.js";
import { trySaveInstance } from "../instances/store.js";
import { confirmBootedAlerting } from "../alerts/apply.js";
import type { MailTemplate } from "../mail.js";
import { notifyUser } from "../notifications/index.js";
import type { Services } from "../services.js";
import { logEvent } from "../telemetry.js";
import { instanceUrl } from "./grafana-admin.js";
import { kickRollout } from "./rollout.js";

export function parseFollowUps(value: string | undefined): FollowUp[] {
  if (!value) return [];
  return value
    .split(",")
    .filter((v): v is FollowUp => (FOLLOW_UPS as readonly string[]).includes(v));
}

/**
 * Runs the row's pending follow-ups and clears those that succeeded. Returns the saved row, or
 * undefined when the row moved meanwhile (the caller reads it again; the follow-ups that ran are
 * idempotent).
 */
export async function runPendingFollowUps(
  services: Services,
  ctx: InvocationContext,
  instance: Instance,
): Promise<Instance | undefined> {
  const failed: FollowUp[] = [];
  for (const followUp of parseFollowUps(instance.pendingFollowUps)) {
    try {
      await runFollowUp(services, ctx, instance, followUp);
    } catch (err) {
      failed.push(followUp);
      logEvent(ctx, "warn", `follow-up ${followUp} failed; it runs again later`, {
        event: "provisioning.follow_up_failed",
        followUp,
        operationId: instance.operationId,
        ref: instance.ref,
        org: instance.org,
        error: err instanceof Error ? err.message.slice(0, 200) : "unknown",
      });
    }
  }
  return trySaveInstance(services, {
    ...instance,
    pendingFollowUps: failed.length ? failed.join(",") : undefined,
  });
}

async function runFollowUp(
  services: Services,
  ctx: InvocationContext,
  i: Instance,
  followUp: FollowUp,
): Promise<void> {
  switch (followUp) {
    case "gateway-sync":
      await requestGatewaySync(services, `${i.operation} ${i.ref}: ${i.state}`);
      return;
    case "billing-sync":
      await syncSubscriptionQuantity(services, i.org);
      return;
    case "notify-ready":
      await notifyRequester(services, ctx, i, "instanceReady", {
        url: instanceUrl(services, i.ref),
      });
      return;
    case "notify-deleted":
      await notifyRequester(services, ctx, i, "instanceDeleted", {
        reason: i.operationReason ?? "requested",
      });
      return;
    case "notify-failed":
      logEvent(ctx, "error", `${i.operation} of the Grafana host failed`, {
        event: "provisioning.replacement_failed",
        operation: i.operation,
        operationId: i.operationId,
        ref: i.ref,
        org: i.org,
        error: i.lastError ?? "",
      });
      await notifyRequester(services, ctx, i, "instanceFailed", {
        operation: i.operation,
        error: i.lastError ?? "",
        url: instanceUrl(services, i.ref),
      });
      return;
    case "configure":
      // The host was (re)created from cloud-init: make sure it serves the desired alerting.
      await confirmBootedAlerting(
        services,
        i,
        i.bootAlertingHash !== undefined && i.bootAlertingVersion !== undefined
          ? { version: i.bootAlertingVersion, hash: i.bootAlertingHash }
          : undefined,
      );
      return;
    case "rollout":
      await kickRollout(services, `after:${i.operationId}`);
      return;
  }
}

/** E-mails whoever asked for the instance (if they want it), once per operation and template. */
async function notifyRequester(
  services: Services,
  ctx: InvocationContext,
  i: Instance,
  template: MailTemplate,
  data: Record<string, string>,
): Promise<void> {
  if (!i.requestedBy) return;
  const outcome = await notifyUser(services, {
    org: i.org,
    userId: i.requestedBy,
    template,
    data: { projectRef: i.ref, projectName: i.projectName ?? i.ref, ...data },
    idempotencyKey: `${template}:${i.operationId}`,
  });
  if (outcome !== "sent")
    logEvent(ctx, "info", `${template} e-mail not sent: ${outcome}`, {
      event: "mail.skipped",
      template,
      ref: i.ref,
      outcome,
    });
}
