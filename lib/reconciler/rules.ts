/**
 * Pure rules of the reconciler: when a Running host counts as unhealthy and is replaced, what a
 * snapshot is called and which snapshots have outlived their retention.
 */
import type { SnapshotInfo } from "../azure/arm.js";
import type { Instance } from "../instances/model.js";

/** A data disk is snapshotted once a day. */
export const SNAPSHOT_EVERY_MS = 24 * 3600_000;

export type HealthVerdict =
  | { kind: "healthy" }
  /** Answered again after failed probes: the counters are cleared. */
  | { kind: "recovered"; patch: Partial<Instance> }
  /** Failed, but not yet for long enough: the failure is counted. */
  | { kind: "suspect"; patch: Partial<Instance> }
  /** Replace the host. */
  | { kind: "heal"; reason: "vm_missing" | "unresponsive" };

/**
 * A probe status that says the host is down: no answer at all, or the gateway's 502/503/504 (its
 * upstream, the host, did not answer). Grafana's own 503 (its database unwell) counts too. A 404
 * means the gateway has no route, which replacing the host would not fix: it says nothing.
 */
export const isHostDown = (status: number) =>
  status === 0 || status === 502 || status === 503 || status === 504;

export function healthVerdict(
  i: Pick<Instance, "failedProbes" | "unhealthySince">,
  seen: { vmMissing: boolean; status: number | undefined; now: Date },
  limits: { HEAL_AFTER_FAILED_PROBES: number; HEAL_AFTER_MINUTES: number },
): HealthVerdict {
  if (seen.vmMissing) return { kind: "heal", reason: "vm_missing" };
  const status = seen.status ?? 200;
  if (!isHostDown(status)) {
    if (status === 200 && (i.failedProbes || i.unhealthySince))
      return { kind: "recovered", patch: { failedProbes: undefined, unhealthySince: undefined } };
    return { kind: "healthy" };
  }
  const failed = (i.failedProbes ?? 0) + 1;
  const since = i.unhealthySince ?? seen.now;
  const longEnough = seen.now.getTime() - since.getTime() >= limits.HEAL_AFTER_MINUTES * 60_000;
  if (failed >= limits.HEAL_AFTER_FAILED_PROBES && longEnough)
    return { kind: "heal", reason: "unresponsive" };
  return { kind: "suspect", patch: { failedProbes: failed, unhealthySince: since } };
}

const pad = (n: number) => String(n).padStart(2, "0");

/** `grafana-<ref>-data-<yyyymmddhhmm>` (UTC): one a day, sortable, within Azure's 80 characters. */
export function snapshotName(ref: string, at: Date): string {
  const stamp = `${at.getUTCFullYear()}${pad(at.getUTCMonth() + 1)}${pad(at.getUTCDate())}${pad(at.getUTCHours())}${pad(at.getUTCMinutes())}`;
  return `grafana-${ref}-data-${stamp}`;
}

/** Snapshots older than the retention, except the newest of each project (always kept). */
export function snapshotsToDelete(
  snapshots: readonly SnapshotInfo[],
  now: Date,
  retentionDays: number,
): SnapshotInfo[] {
  const cutoff = now.getTime() - retentionDays * SNAPSHOT_EVERY_MS;
  const newest = new Map<string, SnapshotInfo>();
  for (const s of snapshots) {
    const seen = newest.get(s.ref);
    if (!seen || seen.createdAt.getTime() < s.createdAt.getTime()) newest.set(s.ref, s);
  }
  return snapshots.filter((s) => s.createdAt.getTime() < cutoff && newest.get(s.ref) !== s);
}

/** The run that does the daily work: the one in the first 5 minutes after 03:00 UTC. */
export const isDailyRun = (now: Date) => now.getUTCHours() === 3 && now.getUTCMinutes() < 5;
