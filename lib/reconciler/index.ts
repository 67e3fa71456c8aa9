/**
 * The reconciler: makes the cloud converge to the instances table. Every five minutes (and on
 * demand) it
 * - reminds trial users before the trial ends, and deprovisions trials that have ended;
 * - deprovisions the paid instances of lapsed subscriptions;
 * - re-drives operations whose next message is overdue (the consumer then applies the
 *   operation's budget, so one stuck past it ends Failed), and runs follow-ups a crash left;
 * - heals Running instances whose host is gone (its VM missing from the one listing of tagged
 *   resources) or stopped answering (health probes through the gateway failing over a window):
 *   the host is replaced, keeping the data disk;
 * - starts the daily incremental snapshot of every Running instance's data disk and deletes
 *   snapshots past `SNAPSHOT_RETENTION_DAYS` (the newest of a project is always kept);
 * - nudges a running rollout (stragglers, a lost nudge);
 * - once a day, drops alert recipients who left their Supabase org;
 * - deletes Azure resources tagged `supafana-ref` (and our DNS records) whose project has no
 *   instance (orphans), each resource on its own;
 * - deletes Supafana-named Supabase keys no instance holds, and rotates old dedicated keys;
 * - asks the gateway to converge (a no-op when its config is current);
 * and reports counts. Each part runs on its own: one failing does not stop the others, and
 * within a part each instance, resource or record fails alone.
 *
 * Cost when nothing is wrong: one listing each of instances, tagged resources, snapshots and DNS
 * records, and one health probe per Running instance (HTTP through the gateway, not ARM); no
 * per-instance ARM read and no table write.
 */
import type { InvocationContext } from "@azure/functions";

import {
  dataDiskId,
  createSnapshot,
  deleteDnsRecord,
  isVm,
  listOurDnsRecords,
  listSnapshots,
  listTaggedResources,
  startDelete,
  type TaggedResource,
} from "../azure/arm.js";
import { findLapsedOrgs } from "../billing/lapse.js";
import { requestGatewaySync } from "../gateway/consumer.js";
import { hasResources, isSettled } from "../instances/lifecycle.js";
import type { Instance } from "../instances/model.js";
import { getProjectRef } from "../instances/project-refs.js";
import {
  getInstance,
  listAllInstances,
  patchInstance,
  trySaveInstance,
} from "../instances/store.js";
import { notifyUser } from "../notifications/index.js";
import { healthUrl, instanceUrl, probe } from "../provisioning/grafana-admin.js";
import { isStuck, redrive, requestDeprovision, startReplacement } from "../provisioning/api.js";
import { runPendingFollowUps } from "../provisioning/follow-ups.js";
import { keyRotationDue, rotateInstanceKey } from "../provisioning/key-rotation.js";
import { kickRollout } from "../provisioning/rollout.js";
import { removeAllResources } from "../provisioning/steps.js";
import type { Services } from "../services.js";
import { logEvent } from "../telemetry.js";
import { purgeExpiredRows } from "../expired-rows.js";
import { sweepOrphanKeys } from "./keys.js";
import {
  healthVerdict,
  isDailyRun,
  snapshotName,
  snapshotsToDelete,
  SNAPSHOT_EVERY_MS,
} from "./rules.js";
import { pruneDepartedRecipients } from "../alerts/apply.js";

/** Key rotations per run: each waits for a scrape on its host (up to a few minutes). */
export const KEY_ROTATIONS_PER_RUN = 1;
/** Health probes in flight at once. */
const PROBE_CONCURRENCY = 16;

export interface ReconcilerReport {
  startedAt: string;
  durationMs: number;
  instances: number;
  trialRemindersSent: number;
  trialsEnded: number;
  lapsedDeprovisioned: number;
  redriven: number;
  followUpsRun: number;
  /** Health probes sent, hosts that failed theirs, and heals started (VM gone or unresponsive). */
  probed: number;
  unhealthy: number;
  healsStarted: number;
  snapshotsStarted: number;
  snapshotsDeleted: number;
  rolloutNudged: boolean;
  /** Instances whose alert recipients lost members who left the org (daily). */
  recipientsPruned: number;
  taggedResources: number;
  orphanRefs: number;
  /** Deletes of orphaned resources this run started (never ones started by an earlier run). */
  orphanDeletesStarted: number;
  /** Orphaned projects with resources still present after this run's deletes were started. */
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
  /** Parts, instances or resources that failed, with a short reason (tried again next run). */
  errors: string[];
}

/** A trial gets its reminder this long before it ends (at most a quarter of the trial). */
export function trialReminderWindowMs(trialHours: number): number {
  return Math.min(24 * 3600_000, (trialHours * 3600_000) / 4);
}

function short(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).slice(0, 200);
}

/** Runs `fn` over `items`, at most `limit` at a time. */
async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
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
    followUpsRun: 0,
    probed: 0,
    unhealthy: 0,
    healsStarted: 0,
    snapshotsStarted: 0,
    snapshotsDeleted: 0,
    rolloutNudged: false,
    recipientsPruned: 0,
    taggedResources: 0,
    orphanRefs: 0,
    orphanDeletesStarted: 0,
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
  const fail = (what: string, err: unknown) => {
    report.errors.push(`${what}: ${short(err)}`);
    logEvent(ctx, "error", `reconciler: ${what} failed`, {
      event: "reconciler.error",
      part: what,
      error: short(err),
    });
  };
  /** A part, or one instance, resource or record of a part: it fails alone, reported. */
  const part = async (name: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      fail(name, err);
    }
  };

  // Resources are listed before the instances are read: an instance that changed after the
  // listing (a host being created, an operation starting) is not judged by it.
  let tagged: TaggedResource[] | undefined;
  await part("resources", async () => {
    tagged = await listTaggedResources(services);
    report.taggedResources = tagged.length;
  });
  const listedAt = services.clock.now();

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
      await part(`trial ${i.ref}`, async () => {
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
      });
    }
  });

  await part("lapsed", async () => {
    for (const lapsed of await findLapsedOrgs(services, now)) {
      for (const ref of lapsed.paidRefs) {
        await part(`lapsed ${ref}`, async () => {
          await requestDeprovision(
            services,
            { org: lapsed.org, ref, reason: "payment_lapsed" },
            ctx,
          );
          report.lapsedDeprovisioned += 1;
        });
      }
    }
  });

  await part("stuck", async () => {
    for (const i of instances) {
      if (isSettled(i.state) || !isStuck(i, now)) continue;
      await part(`stuck ${i.ref}`, async () => {
        // Re-read: the trial and lapse parts may have started a new operation.
        const current = await getInstance(services, i.org, i.ref);
        if (!current || isSettled(current.state) || !isStuck(current, now)) return;
        if (!(await redrive(services, current))) return;
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
      });
    }
  });

  await part("follow-ups", async () => {
    for (const i of instances) {
      if (!i.pendingFollowUps || !isSettled(i.state)) continue;
      await part(`follow-ups ${i.ref}`, async () => {
        if (await runPendingFollowUps(services, ctx, i)) report.followUpsRun += 1;
      });
    }
  });

  await part("health", async () => {
    const withVm = tagged ? new Set(tagged.filter(isVm).map((r) => r.ref)) : undefined;
    const running = instances.filter((i) => i.state === "Running" && !i.pendingFollowUps);
    await forEachLimited(running, PROBE_CONCURRENCY, async (i) => {
      await part(`health ${i.ref}`, async () => {
        // Judged by the listing only when the row did not change after it was taken.
        const vmMissing =
          withVm !== undefined && !withVm.has(i.ref) && i.updatedAt.getTime() < listedAt.getTime();
        let status: number | undefined;
        if (!vmMissing) {
          status = await probe(services, healthUrl(services, i.ref));
          report.probed += 1;
        }
        const verdict = healthVerdict(i, { vmMissing, status, now }, services.config);
        if (verdict.kind === "healthy") return;
        if (verdict.kind === "recovered" || verdict.kind === "suspect") {
          if (verdict.kind === "suspect") report.unhealthy += 1;
          await trySaveInstance(services, { ...i, ...verdict.patch });
          return;
        }
        report.unhealthy += 1;
        const healed = await startReplacement(services, ctx, i, {
          operation: "heal",
          reason: verdict.reason,
          templateSpecId: i.templateSpecId,
        });
        if (!healed) return;
        report.healsStarted += 1;
        logEvent(ctx, "warn", "reconciler started replacing an unhealthy host", {
          event: "reconciler.heal",
          ref: i.ref,
          org: i.org,
          reason: verdict.reason,
          operationId: healed.operationId,
        });
      });
    });
  });

  await part("snapshots", async () => {
    const snapshots = await listSnapshots(services);
    for (const i of instances) {
      if (i.state !== "Running") continue;
      if (i.lastSnapshotAt && now.getTime() - i.lastSnapshotAt.getTime() < SNAPSHOT_EVERY_MS)
        continue;
      await part(`snapshot ${i.ref}`, async () => {
        await createSnapshot(services, {
          ref: i.ref,
          org: i.org,
          name: snapshotName(i.ref, now),
          sourceDiskId: dataDiskId(services, i.ref),
        });
        report.snapshotsStarted += 1;
        await patchInstance(services, i.org, i.ref, () => ({ lastSnapshotAt: now }));
      });
    }
    for (const s of snapshotsToDelete(snapshots, now, services.config.SNAPSHOT_RETENTION_DAYS)) {
      await part(`snapshot ${s.name}`, async () => {
        await startDelete(services, {
          id: s.id,
          name: s.name,
          ref: s.ref,
          type: "Microsoft.Compute/snapshots",
        });
        report.snapshotsDeleted += 1;
      });
    }
  });

  await part("recipients", async () => {
    if (!isDailyRun(now)) return;
    report.recipientsPruned = (await pruneDepartedRecipients(services, ctx)).pruned;
  });

  await part("rollout", async () => {
    report.rolloutNudged = await kickRollout(services, `reconcile:${now.getTime()}`);
  });

  await part("orphans", async () => {
    if (!tagged) return;
    // Instances are read again after the listing, so a provision started meanwhile counts.
    const wanted = new Set(
      (await listAllInstances(services)).filter(hasResources).map((i) => i.ref),
    );
    const byRef = new Map<string, TaggedResource[]>();
    for (const r of tagged)
      if (!wanted.has(r.ref)) byRef.set(r.ref, [...(byRef.get(r.ref) ?? []), r]);
    report.orphanRefs = byRef.size;
    for (const [ref, resources] of byRef) {
      await part(`orphan ${ref}`, async () => {
        if (await wantsResources(services, ref)) return;
        const removal = await removeAllResources(services, ref, resources);
        report.orphanDeletesStarted += removal.deletesStarted;
        if (!removal.done) report.orphansPending += 1;
        for (const e of removal.errors) report.errors.push(`orphan ${ref}: ${e}`);
        logEvent(ctx, "warn", "reconciler removed orphaned Azure resources", {
          event: "reconciler.orphan",
          ref,
          deletesStarted: removal.deletesStarted,
          status: removal.done ? "clean" : removal.why,
        });
      });
    }
    for (const record of await listOurDnsRecords(services)) {
      const ref = record.ref ?? record.name;
      if (wanted.has(ref)) continue;
      await part(`orphan dns ${record.name}`, async () => {
        if (await wantsResources(services, ref)) return;
        await deleteDnsRecord(services, record.name);
        report.orphanDnsRecordsDeleted += 1;
      });
    }
  });

  await part("keys", async () => {
    const swept = await sweepOrphanKeys(services, ctx, now, instances);
    report.keyProjectsChecked = swept.checked;
    report.orphanKeysDeleted = swept.deleted;
  });

  await part("key-rotation", async () => {
    const due = instances
      .filter(
        (i) => i.state === "Running" && keyRotationDue(i, now, services.config.KEY_ROTATION_DAYS),
      )
      .sort((a, b) => (a.keyRotatedAt?.getTime() ?? 0) - (b.keyRotatedAt?.getTime() ?? 0))
      .slice(0, KEY_ROTATIONS_PER_RUN);
    for (const i of due) {
      try {
        await rotateInstanceKey(services, ctx, i.org, i.ref, "scheduled");
        report.keysRotated += 1;
      } catch (err) {
        report.keyRotationsFailed += 1;
        fail(`key rotation ${i.ref}`, err);
      }
    }
  });

  await part("expired-rows", async () => {
    report.expiredRowsDeleted = await purgeExpiredRows(services);
  });

  await part("gateway", async () => {
    await requestGatewaySync(services, "reconciler", { delayMs: 0 });
    report.gatewaySyncRequested = true;
  });

  report.durationMs = Math.round(performance.now() - started);
  logEvent(ctx, "info", "reconciler report", { event: "reconciler.report", ...report });
  return report;
}

/** The project's instance (in whichever org owns the ref) still wants its Azure resources. */
async function wantsResources(services: Services, ref: string): Promise<boolean> {
  const owner = await getProjectRef(services, ref);
  if (!owner) return false;
  return hasResources(await getInstance(services, owner.org, ref));
}

/** Sends the "trial ending" e-mail once per trial (recorded on the row). */
async function remindTrial(
  services: Services,
  ctx: InvocationContext,
  i: Instance,
): Promise<boolean> {
  if (!i.requestedBy || !i.trialEndsAt) return false;
  const outcome = await notifyUser(services, {
    org: i.org,
    userId: i.requestedBy,
    template: "trialEnding",
    data: {
      projectRef: i.ref,
      projectName: i.projectName ?? i.ref,
      url: instanceUrl(services, i.ref),
      trialEndsAt: i.trialEndsAt.toISOString(),
    },
    idempotencyKey: `trialEnding:${i.ref}:${i.trialEndsAt.getTime()}`,
  });
  // Not a member any more, or no address: nothing to remind (opted out counts as reminded).
  if (outcome === "not_a_member" || outcome === "no_email") return false;
  if (!(await trySaveInstance(services, { ...i, trialReminderSentAt: services.clock.now() }))) {
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
