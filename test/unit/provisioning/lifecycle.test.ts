import { describe, expect, it } from "vitest";

import {
  beginOperation,
  decideStart,
  failWith,
  INSTANCE_STATES,
  isRoutable,
  next,
  OPERATIONS,
  overBudget,
  stateAt,
  TRANSITIONS,
  type InstanceState,
  type Limits,
  type Operation,
  type StepId,
} from "../../../lib/instances/lifecycle.js";
import type { Instance } from "../../../lib/instances/model.js";

const T0 = new Date("2026-12-01T10:00:00Z");
const at = (ms: number) => new Date(T0.getTime() + ms);
const limits: Limits = { pollMs: 15_000, maxFailures: 4, budgetMs: 45 * 60_000, random: () => 0.5 };

function instance(over: Partial<Instance> = {}): Instance {
  return {
    org: "org-a",
    ref: "abcdefghijklmnopqrst",
    state: "Requested",
    operationId: "op-1",
    operation: "provision",
    step: "deploy",
    attempts: 0,
    operationStartedAt: T0,
    plan: "trial",
    createdAt: T0,
    updatedAt: T0,
    etag: "W/1",
    ...over,
  };
}

/** Walks an operation from its first step to its end with every step done. */
function walk(operation: Operation, first: StepId, start: Partial<Instance> = {}) {
  let i = instance({ operation, step: first, state: stateAt(operation, first), ...start });
  const seen: { step: string; state: InstanceState; followUps: string[] }[] = [];
  for (let n = 0; n < 20; n++) {
    const step = i.step as StepId;
    const patch = step === "configure" ? { privateIp: "10.0.0.9" } : {};
    const t = next(i, { kind: "done", patch }, at(n * 1000), limits);
    i = { ...i, ...t.patch };
    seen.push({ step: i.step, state: i.state, followUps: t.followUps });
    if (t.outcome === "completed") return { i, seen, last: t };
    expect(t.outcome).toBe("advanced");
    expect(t.dispatchAt).toEqual(at(n * 1000));
  }
  throw new Error("operation did not end");
}

describe("lifecycle: the transition table", () => {
  it("when every step of a provision is done, then it goes Requested → Deploying → Configuring → Verifying → Running and notifies readiness", () => {
    const { i, seen, last } = walk("provision", "deploy");
    expect(seen.map((s) => `${s.step}/${s.state}`)).toEqual([
      "await-deployment/Deploying",
      "configure/Configuring",
      "verify/Verifying",
      "done/Running",
    ]);
    // The private IP arrives with configure: that transition asks the gateway to route it.
    expect(seen[2]?.followUps).toEqual(["gateway-sync"]);
    expect(last.followUps).toEqual(["notify-ready", "configure"]);
    expect(i.readyAt).toEqual(at(3000));
    expect(i.nextRunAt).toBeUndefined();
  });

  it("when a provision follows a failure, then it starts with cleanup and cleanup leads to deploy", () => {
    expect(decideStart(instance({ state: "Failed", step: "failed" }), "provision")).toEqual({
      kind: "start",
      afterFailure: true,
    });
    const { seen } = walk("provision", "cleanup");
    expect(seen[0]).toMatchObject({ step: "deploy", state: "Requested" });
  });

  it.each(["upgrade", "heal"] as const)(
    "when every step of %s is done, then the host is unrouted, removed, redeployed and the instance ends Running on the new version",
    (operation) => {
      const { i, seen, last } = walk(operation, "unroute", {
        hostVersion: "1.0.0",
        pendingHostVersion: "2.0.0",
      });
      expect(seen.map((s) => `${s.step}/${s.state}`)).toEqual([
        "remove-host/Replacing",
        "deploy/Replacing",
        "await-deployment/Deploying",
        "configure/Configuring",
        "verify/Verifying",
        "done/Running",
      ]);
      expect(i.hostVersion).toBe("2.0.0");
      expect(i.pendingHostVersion).toBeUndefined();
      if (operation === "heal") expect(i.healedAt).toEqual(at(5000));
      else expect(i.healedAt).toBeUndefined();
      // Nobody is e-mailed about a replacement that worked; a rollout moves on after an upgrade.
      expect(last.followUps).toEqual(
        operation === "upgrade" ? ["configure", "rollout"] : ["configure"],
      );
    },
  );

  it("when every step of a deprovision is done, then it ends Deleted with the host's fields cleared", () => {
    const { i, seen, last } = walk("deprovision", "drain", {
      privateIp: "10.0.0.4",
      url: "https://x",
      passwordSecret: "s",
      hostVersion: "1",
      lastSnapshotAt: T0,
      plan: "paid",
    });
    expect(seen.map((s) => `${s.step}/${s.state}`)).toEqual([
      "delete-resources/Deleting",
      "done/Deleted",
    ]);
    expect(i).toMatchObject({ privateIp: undefined, url: undefined, passwordSecret: undefined });
    expect(i.hostVersion).toBeUndefined();
    expect(i.lastSnapshotAt).toBeUndefined();
    expect(last.followUps).toEqual(["notify-deleted"]);
  });

  it("every state but Replacing's neighbours is reached by some operation, and each step maps to one state per operation", () => {
    const reached = new Set<InstanceState>(["Failed"]);
    for (const op of OPERATIONS) {
      for (const [, state] of TRANSITIONS[op].steps) reached.add(state);
      reached.add(TRANSITIONS[op].ends);
    }
    expect([...reached].sort()).toEqual([...INSTANCE_STATES].sort());
  });
});

describe("lifecycle: waits, retries, budgets", () => {
  it("when a step waits, then only the attempt and the due time move, by the given delay or the poll interval", () => {
    const i = instance({ step: "await-deployment", state: "Deploying", attempts: 2 });
    const t = next(i, { kind: "wait", why: "running" }, at(0), limits);
    expect(t).toMatchObject({ outcome: "waiting", followUps: [] });
    expect(t.patch).toEqual({ attempts: 3, nextRunAt: at(15_000), updatedAt: at(0) });
    expect(next(i, { kind: "wait", why: "x", delayMs: 7 }, at(0), limits).dispatchAt).toEqual(
      at(7),
    );
  });

  it("when a step fails transiently, then it backs off exponentially, honours Retry-After, and gives up after the failure budget", () => {
    const i = instance({ failures: 0 });
    const first = next(i, { kind: "retry", error: { message: "429" } }, at(0), limits);
    expect(first.outcome).toBe("retrying");
    // Equal jitter with random 0.5: base * 0.75.
    expect(first.patch.nextRunAt).toEqual(at(11_250));
    expect(first.patch).toMatchObject({ failures: 1, attempts: 1, lastError: "429" });
    const third = next(
      instance({ failures: 2 }),
      { kind: "retry", error: { message: "x" } },
      at(0),
      limits,
    );
    expect(third.patch.nextRunAt).toEqual(at(45_000));
    const asked = next(
      instance({ failures: 0 }),
      { kind: "retry", error: { message: "x", retryAfterMs: 120_000 } },
      at(0),
      limits,
    );
    expect(asked.patch.nextRunAt).toEqual(at(120_000));
    const last = next(
      instance({ failures: 3 }),
      { kind: "retry", error: { message: "boom" } },
      at(0),
      limits,
    );
    expect(last.outcome).toBe("failed");
    expect(last.patch).toMatchObject({ state: "Failed", step: "failed" });
    expect(last.patch.lastError).toBe("Gave up after 4 failed attempts. Last error: boom");
    expect(last.dispatchAt).toBeUndefined();
  });

  it("when the operation is past its wall-time budget, then overBudget names it with the last error", () => {
    const i = instance({ operation: "upgrade", lastError: "slow" });
    expect(overBudget(i, at(45 * 60_000), limits)).toBeUndefined();
    expect(overBudget(i, at(45 * 60_000 + 1), limits)).toBe(
      "The upgrade did not finish within 45 minutes. Last error: slow",
    );
  });

  it("when a routed paid instance fails, then it is unrouted, billing is synced, and a failed replacement notifies and moves the rollout on", () => {
    const routed = instance({
      state: "Verifying",
      step: "verify",
      privateIp: "10.0.0.4",
      plan: "paid",
    });
    expect(failWith(routed, "no", at(0)).followUps).toEqual(["gateway-sync", "billing-sync"]);
    const upgrading = instance({
      operation: "upgrade",
      state: "Deploying",
      step: "await-deployment",
    });
    expect(
      next(upgrading, { kind: "fail", message: "SkuNotAvailable" }, at(0), limits).followUps,
    ).toEqual(["notify-failed", "rollout"]);
    const healing = instance({ operation: "heal", state: "Replacing", step: "remove-host" });
    expect(failWith(healing, "x", at(0)).followUps).toEqual(["notify-failed"]);
  });

  it("when a message arrives for an operation that is over, then next refuses it", () => {
    expect(() =>
      next(instance({ step: "done", state: "Running" }), { kind: "done" }, at(0), limits),
    ).toThrow();
  });
});

describe("lifecycle: starting operations", () => {
  const running = instance({ state: "Running", step: "done", privateIp: "10.0.0.4", plan: "paid" });

  it.each<[string, Partial<Instance> | undefined, Operation, string]>([
    ["nothing", undefined, "provision", "start"],
    ["Deleted", { state: "Deleted", step: "done" }, "provision", "start"],
    ["Running", { state: "Running", step: "done" }, "provision", "current"],
    ["provisioning", { state: "Deploying", step: "await-deployment" }, "provision", "current"],
    [
      "upgrading",
      { state: "Replacing", step: "unroute", operation: "upgrade" },
      "provision",
      "current",
    ],
    [
      "Deleting",
      { state: "Deleting", step: "drain", operation: "deprovision" },
      "provision",
      "refuse",
    ],
    ["nothing", undefined, "deprovision", "refuse"],
    ["Running", { state: "Running", step: "done" }, "deprovision", "start"],
    [
      "upgrading",
      { state: "Deploying", step: "await-deployment", operation: "upgrade" },
      "deprovision",
      "start",
    ],
    ["Failed", { state: "Failed", step: "failed" }, "deprovision", "start"],
    [
      "Deleting",
      { state: "Deleting", step: "drain", operation: "deprovision" },
      "deprovision",
      "current",
    ],
    ["Deleted", { state: "Deleted", step: "done" }, "deprovision", "current"],
    ["Running", { state: "Running", step: "done" }, "upgrade", "start"],
    ["Running", { state: "Running", step: "done" }, "heal", "start"],
    ["provisioning", { state: "Deploying", step: "await-deployment" }, "upgrade", "refuse"],
    ["healing", { state: "Replacing", step: "unroute", operation: "heal" }, "upgrade", "refuse"],
    ["healing", { state: "Replacing", step: "unroute", operation: "heal" }, "heal", "current"],
    [
      "failed upgrade",
      { state: "Failed", step: "failed", operation: "upgrade" },
      "upgrade",
      "start",
    ],
    [
      "failed provision",
      { state: "Failed", step: "failed", operation: "provision" },
      "upgrade",
      "refuse",
    ],
    ["Deleted", { state: "Deleted", step: "done" }, "heal", "refuse"],
  ])("when the instance is %s, then %s decides %s", (_what, over, op, kind) => {
    expect(decideStart(over ? instance(over) : undefined, op).kind).toBe(kind);
  });

  it("when an upgrade starts on a routed instance, then it is unrouted at once (its address dropped) and the first step is unroute", () => {
    const { patch, followUps } = beginOperation(running, {
      operation: "upgrade",
      operationId: "op-2",
      reason: "rollout:r1",
      now: at(0),
      afterFailure: false,
    });
    expect(patch).toMatchObject({
      state: "Replacing",
      step: "unroute",
      operation: "upgrade",
      operationId: "op-2",
      attempts: 0,
      failures: 0,
      privateIp: undefined,
      operationReason: "rollout:r1",
    });
    expect(isRoutable({ ...running, ...patch })).toBe(false);
    expect(followUps).toEqual(["gateway-sync"]);
  });

  it("when a failed upgrade is retried, then it starts at remove-host (nothing is routed)", () => {
    const failed = instance({ state: "Failed", step: "failed", operation: "upgrade" });
    const { patch } = beginOperation(failed, {
      operation: "upgrade",
      operationId: "op-3",
      reason: "operator_retry",
      now: at(0),
      afterFailure: true,
    });
    expect(patch).toMatchObject({ step: "remove-host", state: "Replacing" });
  });

  it("when a paid Running instance starts deprovisioning, then the gateway and billing follow; a new paid provision syncs billing", () => {
    const { patch, followUps } = beginOperation(running, {
      operation: "deprovision",
      operationId: "op-4",
      reason: "requested",
      now: at(0),
      afterFailure: false,
    });
    expect(patch).toMatchObject({ state: "Deleting", step: "drain" });
    expect(followUps).toEqual(["gateway-sync", "billing-sync"]);
    const fresh = beginOperation(undefined, {
      operation: "provision",
      operationId: "op-5",
      reason: "requested",
      now: at(0),
      afterFailure: false,
    });
    expect(fresh.patch).toMatchObject({ state: "Requested", step: "deploy" });
    expect(fresh.followUps).toEqual([]);
    const paid = beginOperation(
      { ...running, state: "Deleted", privateIp: undefined },
      {
        operation: "provision",
        operationId: "op-6",
        reason: "requested",
        now: at(0),
        afterFailure: false,
      },
    );
    expect(paid.followUps).toEqual(["billing-sync"]);
  });
});
