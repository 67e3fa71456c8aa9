import { describe, expect, it } from "vitest";

import type { Instance } from "../../../lib/instances/model.js";
import { rolloutProgress, type Rollout } from "../../../lib/provisioning/rollout.js";
import { healthVerdict, snapshotName, snapshotsToDelete } from "../../../lib/reconciler/rules.js";

const T0 = new Date("2026-12-01T10:00:00Z");
const min = (n: number) => new Date(T0.getTime() + n * 60_000);
const limits = { HEAL_AFTER_FAILED_PROBES: 3, HEAL_AFTER_MINUTES: 10 };

describe("health verdicts", () => {
  it("when the VM is missing from the listing, then the host is healed at once", () => {
    expect(healthVerdict({}, { vmMissing: true, status: undefined, now: T0 }, limits)).toEqual({
      kind: "heal",
      reason: "vm_missing",
    });
  });

  it("when probes fail, then only enough failures over the window heal; one blip does nothing", () => {
    let i: Partial<Instance> = {};
    const seen: string[] = [];
    for (const [at, status] of [
      [0, 0],
      [5, 502],
      [9, 503],
      [10, 504],
    ] as const) {
      const v = healthVerdict(i, { vmMissing: false, status, now: min(at) }, limits);
      seen.push(v.kind);
      if (v.kind === "suspect") i = { ...i, ...v.patch };
    }
    // Three failures after 9 minutes are not enough; the fourth, 10 minutes in, is.
    expect(seen).toEqual(["suspect", "suspect", "suspect", "heal"]);
    expect(i.unhealthySince).toEqual(min(0));
  });

  it("when a host answers again after failing, then its counters are cleared; a 404 (no route) says nothing about the host", () => {
    const failing = { failedProbes: 2, unhealthySince: T0 };
    expect(healthVerdict(failing, { vmMissing: false, status: 200, now: min(1) }, limits)).toEqual({
      kind: "recovered",
      patch: { failedProbes: undefined, unhealthySince: undefined },
    });
    expect(
      healthVerdict(failing, { vmMissing: false, status: 404, now: min(60) }, limits).kind,
    ).toBe("healthy");
    expect(healthVerdict({}, { vmMissing: false, status: 200, now: T0 }, limits).kind).toBe(
      "healthy",
    );
  });
});

describe("snapshots", () => {
  const ref = "abcdefghijklmnopqrst";
  const snap = (r: string, days: number) => ({
    id: `/x/${r}/${days}`,
    name: snapshotName(r, new Date(T0.getTime() - days * 86_400_000)),
    ref: r,
    createdAt: new Date(T0.getTime() - days * 86_400_000),
  });

  it("names a snapshot after the disk and the UTC minute", () => {
    expect(snapshotName(ref, new Date("2026-03-04T05:06:59Z"))).toBe(
      `grafana-${ref}-data-202603040506`,
    );
  });

  it("when snapshots are past the retention, then they go, except the newest of each project", () => {
    const other = "bbbbbbbbbbbbbbbbbbbb";
    const all = [snap(ref, 1), snap(ref, 8), snap(ref, 9), snap(other, 30), snap(other, 40)];
    expect(snapshotsToDelete(all, T0, 7).map((s) => s.id)).toEqual([
      `/x/${ref}/8`,
      `/x/${ref}/9`,
      `/x/${other}/40`,
    ]);
  });
});

describe("rollout progress", () => {
  const rollout: Rollout = {
    rolloutId: "r1",
    templateSpecId: "/t/versions/2",
    hostVersion: "2",
    max: 100,
    batch: 2,
    status: "running",
    createdAt: T0,
    updatedAt: T0,
  };
  const inst = (ref: string, over: Partial<Instance>): Instance =>
    ({
      org: "o",
      ref,
      state: "Running",
      step: "done",
      operation: "provision",
      hostVersion: "1",
      ...over,
    }) as Instance;

  it("when two of a batch of two are in flight, then nothing more starts; when one ends, one more does", () => {
    const instances = [
      inst("a", {
        operation: "upgrade",
        operationReason: "rollout:r1",
        state: "Deploying",
        step: "await-deployment",
      }),
      inst("b", {
        operation: "upgrade",
        operationReason: "rollout:r1",
        state: "Replacing",
        step: "unroute",
      }),
      inst("c", {}),
      inst("d", {}),
      inst("e", { hostVersion: "2" }),
    ];
    const busy = rolloutProgress(rollout, instances);
    expect(busy.toStart).toEqual([]);
    expect(busy.progress).toMatchObject({ inFlight: 2, remaining: 2, upgraded: 0 });
    instances[0] = {
      ...instances[0],
      state: "Running",
      step: "done",
      hostVersion: "2",
    } as Instance;
    const next = rolloutProgress(rollout, instances);
    expect(next.toStart.map((i) => i.ref)).toEqual(["c"]);
    expect(next.finished).toBe(false);
  });

  it("when upgrades of the rollout failed, then they keep their slots, and a full batch of failures halts it", () => {
    const failed = (ref: string) =>
      inst(ref, {
        operation: "upgrade",
        operationReason: "rollout:r1",
        state: "Failed",
        step: "failed",
      });
    const one = rolloutProgress(rollout, [failed("a"), inst("b", {}), inst("c", {})]);
    expect(one.toStart.map((i) => i.ref)).toEqual(["b"]);
    const two = rolloutProgress(rollout, [failed("a"), failed("b"), inst("c", {})]);
    expect(two.toStart).toEqual([]);
    expect(two.progress).toMatchObject({ status: "halted", failed: 2, remaining: 1 });
    expect(two.finished).toBe(false);
  });

  it("when nothing is left and nothing is in flight, then the rollout is finished; max bounds the instances upgraded", () => {
    const done = [
      inst("a", { operation: "upgrade", operationReason: "rollout:r1", hostVersion: "2" }),
    ];
    expect(rolloutProgress(rollout, done).finished).toBe(true);
    const capped = rolloutProgress({ ...rollout, max: 1 }, [...done, inst("b", {})]);
    expect(capped.toStart).toEqual([]);
    expect(capped.finished).toBe(true);
    const org = rolloutProgress({ ...rollout, org: "other" }, [inst("b", {})]);
    expect(org.toStart).toEqual([]);
  });
});
