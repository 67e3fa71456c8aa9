/**
 * The reconciler: makes the cloud converge to the instances table. Every five minutes (and on
 * demand) it
 * - reminds trial users before the trial ends, and deprovisions trials that have ended;
 * - deprovisions the paid instances of lapsed subscriptions;
 * - re-drives operations whose next message is overdue (the consumer then applies the
 *   operation's budget, so one stuck past it ends Failed);
 * - deletes Azure resources tagged `supafana-ref` (and our DNS records) whose project has no
 *   live instance (orphans);
 * - deletes Supafana-named Supabase keys no instance holds (a failed revoke, a crashed mint), a
 *   bounded number of projects per run, and rotates dedicated keys older than
 *   `KEY_ROTATION_DAYS` (one per run: a rotation waits for a scrape on the host);
 * - asks the gateway to converge (a no-op when its config is current);
 * and reports counts. Each part runs on its own: one failing does not stop the others.
 */
import type { InvocationContext } from "@azure/functions";

import { deleteDnsRecord, listOurDnsRecords, listTaggedResources } from "../azure/arm.js";
import { findLapsedOrgs } from "../billing/lapse.js";
import { requestGatewaySync } from "../gateway/consumer.js";
import {
  getInstance,
  getProjectRef,
  listAllInstances,
  saveInstance,
  type Instance,
} from "../instances/store.js";
import { sendMail } from "../mail.js";
import { isTerminal } from "../provisioning/engine.js";
import { instanceUrl } from "../provisioning/grafana-admin.js";
import { isStuck, redrive, requestDeprovision } from "../provisioning/api.js";
import { sweep } from "../provisioning/steps.js";
import type { Services } from "../services.js";
import { isConflict } from "../storage/tables.js";
import { supabaseFor } from "../supabase/client.js";
import { logEvent } from "../telemetry.js";
import { purgeExpiredRows as sweepExpiredRows } from "../expired-rows.js";
import { sweepOrphanKeys } from "./keys.js";
import { keyRotationDue, rotateInstanceKey } from "../provisioning/key-rotation.js";

/** Key rotations per run: each waits for a scrape on its host (up to a few minutes). */
export const KEY_ROTATIONS_PER_RUN = 1;

export interface ReconcilerReport {
  startedAt: string;
  durationMs: number;
  instances: number;
  trialRemindersSent: number;
  trialsEnded: number;
  lapsedDeprovisioned: number;
  redriven: number;
  taggedResources: number;
  orphanRefs: number;
  orphansDeleted: number;
  orphansPending: number;
  orphanDnsRecordsDeleted: number;
  /** Projects whose Supabase keys were checked, and the unheld Supafana keys deleted. */
  keyProjectsChecked: number;
  orphanKeysDeleted: number;
  keysRotated: number;
  keyRotationsFailed: number;
  gatewaySyncRequested: boolean;
  /** Ended sessions, unused OAuth states and past rate-limit windows removed, per table. */
  expiredRowsDeleted: Record<string, number>;
  /** Parts that failed, with a short reason (they run again next time). */
  errors: string[];
}

/** A trial gets its reminder this long before it ends (at most a quarter of the trial). */
export function trialReminderWindowMs(trialHours: number): number {
  return Math.min(24 * 3600_000, (trialHours * 3600_000) / 4);
}

const isLive = (i: Instance | undefined) => i !== undefined && i.state !== "Deleted";

function short(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).slice(0, 200);
}

export async function runReconciler(
  services: Services,
  ctx: InvocationContext,
): Promise<ReconcilerReport> {
  const started = performance.now();
  const now = services.clock.now();
  const report: ReconcilerReport = {
    startedAt: now.toISOString(),
    durationMs: 0,
    instances: 0,
    trialRemindersSent: 0,
    trialsEnded: 0,
    lapsedDeprovisioned: 0,
    redriven: 0,
    taggedResources: 0,
    orphanRefs: 0,
    orphansDeleted: 0,
    orphansPending: 0,
    orphanDnsRecordsDeleted: 0,
    keyProjectsChecked: 0,
    orphanKeysDeleted: 0,
    keysRotated: 0,
    keyRotationsFailed: 0,
    gatewaySyncRequested: false,
    expiredRowsDeleted: {},
    errors: [],
  };
  const part = async (name: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      report.errors.push(`${name}: ${short(err)}`);
      logEvent(ctx, "error", `reconciler: ${name} failed`, {
        event: "reconciler.error",
        part: name,
        error: short(err),
      });
    }
  };

  let instances: Instance[] = [];
  await part("instances", async () => {
    instances = await listAllInstances(services);
    report.instances = instances.length;
  });

  await part("trials", async () => {
    const window = trialReminderWindowMs(services.config.TRIAL_HOURS);
    for (const i of instances) {
      if (i.plan !== "trial" || !i.trialEndsAt) continue;
      if (i.state === "Deleting" || i.state === "Deleted") continue;
      const left = i.trialEndsAt.getTime() - now.getTime();
      try {
        if (left <= 0) {
          await requestDeprovision(
            services,
            { org: i.org, ref: i.ref, reason: "trial_ended" },
            ctx,
          );
          report.trialsEnded += 1;
        } else if (left <= window && i.state === "Running" && !i.trialReminderSentAt) {
          if (await remindTrial(services, ctx, i)) report.trialRemindersSent += 1;
        }
      } catch (err) {
        report.errors.push(`trial ${i.ref}: ${short(err)}`);
      }
    }
  });

  await part("lapsed", async () => {
    for (const lapsed of await findLapsedOrgs(services, now)) {
      for (const ref of lapsed.paidRefs) {
        try {
          await requestDeprovision(
            services,
            { org: lapsed.org, ref, reason: "payment_lapsed" },
            ctx,
          );
          report.lapsedDeprovisioned += 1;
        } catch (err) {
          report.errors.push(`lapsed ${ref}: ${short(err)}`);
        }
      }
    }
  });

  await part("stuck", async () => {
    for (const i of instances) {
      if (isTerminal(i.state) || !isStuck(i, now)) continue;
      // Re-read: the trial and lapse parts may have started a new operation.
      const current = await getInstance(services, i.org, i.ref);
      if (!current || isTerminal(current.state) || !isStuck(current, now)) continue;
      if (!(await redrive(services, current))) continue;
      report.redriven += 1;
      logEvent(ctx, "warn", "reconciler re-drove a stuck operation", {
        event: "provisioning.step",
        operationId: current.operationId,
        ref: current.ref,
        org: current.org,
        step: current.step,
        attempt: current.attempts,
        durationMs: 0,
        operation: current.operation,
        state: current.state,
        outcome: "redriven",
      });
    }
  });

  await part("orphans", async () => {
    const tagged = await listTaggedResources(services);
    report.taggedResources = tagged.length;
    // Instances are read after the resources, so a provision started meanwhile counts as live.
    const live = new Set((await listAllInstances(services)).filter(isLive).map((i) => i.ref));
    const candidates = [...new Set(tagged.map((r) => r.ref))].filter((ref) => !live.has(ref));
    report.orphanRefs = candidates.length;
    for (const ref of candidates) {
      if (await hasLiveInstance(services, ref)) continue;
      try {
        const status = await sweep(services, ref);
        if (status === "clean") report.orphansDeleted += 1;
        else report.orphansPending += 1;
        logEvent(ctx, "warn", "reconciler removed orphaned Azure resources", {
          event: "reconciler.orphan",
          ref,
          status,
        });
      } catch (err) {
        report.orphansPending += 1;
        report.errors.push(`orphan ${ref}: ${short(err)}`);
      }
    }
    for (const record of await listOurDnsRecords(services)) {
      const ref = record.ref ?? record.name;
      if (live.has(ref) || (await hasLiveInstance(services, ref))) continue;
      await deleteDnsRecord(services, record.name);
      report.orphanDnsRecordsDeleted += 1;
    }
  });

  await part("keys", async () => {
    const swept = await sweepOrphanKeys(services, ctx, now);
    report.keyProjectsChecked = swept.checked;
    report.orphanKeysDeleted = swept.deleted;
  });

  await part("key-rotation", async () => {
    const due = (await listAllInstances(services, ["Running"]))
      .filter((i) => keyRotationDue(i, now, services.config.KEY_ROTATION_DAYS))
      .sort((a, b) => (a.keyRotatedAt?.getTime() ?? 0) - (b.keyRotatedAt?.getTime() ?? 0))
      .slice(0, KEY_ROTATIONS_PER_RUN);
    for (const i of due) {
      try {
        await rotateInstanceKey(services, ctx, i.org, i.ref, "scheduled");
        report.keysRotated += 1;
      } catch (err) {
        report.keyRotationsFailed += 1;
        report.errors.push(`key rotation ${i.ref}: ${short(err)}`);
      }
    }
  });

  await part("sweep", async () => {
    report.expiredRowsDeleted = await sweepExpiredRows(services);
  });

  await part("gateway", async () => {
    await requestGatewaySync(services, "reconciler", { delayMs: 0 });
    report.gatewaySyncRequested = true;
  });

  report.durationMs = Math.round(performance.now() - started);
  logEvent(ctx, "info", "reconciler report", { event: "reconciler.report", ...report });
  return report;
}

async function hasLiveInstance(services: Services, ref: string): Promise<boolean> {
  const owner = await getProjectRef(services, ref);
  if (!owner) return false;
  return isLive(await getInstance(services, owner.org, ref));
}

/** Sends the "trial ending" e-mail once per trial (recorded on the row). */
async function remindTrial(
  services: Services,
  ctx: InvocationContext,
  i: Instance,
): Promise<boolean> {
  if (!i.requestedBy || !i.trialEndsAt) return false;
  const members = await supabaseFor(services, i.org).listMembers();
  const email = members.find((m) => m.userId === i.requestedBy)?.email;
  if (!email) return false;
  await sendMail(
    services,
    "trialEnding",
    email,
    {
      projectRef: i.ref,
      projectName: i.projectName ?? i.ref,
      url: instanceUrl(services, i.ref),
      trialEndsAt: i.trialEndsAt.toISOString(),
    },
    `trialEnding:${i.ref}:${i.trialEndsAt.getTime()}`,
  );
  try {
    await saveInstance(services, { ...i, trialReminderSentAt: services.clock.now() });
  } catch (err) {
    if (!isConflict(err)) throw err;
    logEvent(
      ctx,
      "warn",
      "trial reminder sent but not recorded (the row moved); the e-mail key prevents a resend",
      {
        event: "reconciler.trial_reminder",
        ref: i.ref,
      },
    );
  }
  return true;
}
