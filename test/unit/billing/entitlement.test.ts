import fc from "fast-check";
import { describe, expect, it } from "vitest";

import { decideEntitlement, type EntitlementInput } from "../../../lib/billing/entitlement.js";
import type { InstanceState } from "../../../lib/instances/lifecycle.js";
import type { Plan } from "../../../lib/instances/model.js";

const NOW = new Date("2026-03-01T12:00:00Z");
const H = 3600_000;
const REF = "abcdefghijklmnopqrst";
const OTHER = "tsrqponmlkjihgfedcba";

function input(over: Partial<EntitlementInput> = {}): EntitlementInput {
  return {
    now: NOW,
    ref: REF,
    org: "acme",
    billing: {},
    instances: [],
    trialHours: 72,
    graceHours: 48,
    ...over,
  };
}

const usedTrial = {
  org: "acme",
  trialStartedAt: new Date(NOW.getTime() - 100 * H),
  trialEndsAt: new Date(NOW.getTime() - 28 * H),
};
const runningTrial = {
  org: "acme",
  trialStartedAt: new Date(NOW.getTime() - 2 * H),
  trialEndsAt: new Date(NOW.getTime() + 70 * H),
};

describe("decideEntitlement", () => {
  it("when the project never had a trial and the org pays nothing, then it gets a trial of TRIAL_HOURS", () => {
    const d = decideEntitlement(input());
    expect(d).toEqual({
      allowed: true,
      plan: "trial",
      trialEndsAt: new Date(NOW.getTime() + 72 * H),
    });
  });

  it("when the project's trial ended, then it is refused with trial_used", () => {
    const d = decideEntitlement(input({ projectRef: usedTrial }));
    expect(d.allowed).toBe(false);
    if (!d.allowed) {
      expect(d.code).toBe("trial_used");
      expect(d.message).toContain(usedTrial.trialEndsAt.toISOString());
    }
  });

  it("when the project was deleted during its trial and provisioned again, then the trial resumes with its original end", () => {
    const d = decideEntitlement(input({ projectRef: runningTrial }));
    expect(d).toEqual({ allowed: true, plan: "trial", trialEndsAt: runningTrial.trialEndsAt });
  });

  it("when another org used this project's trial, then the trial is still used (once per project ever)", () => {
    const d = decideEntitlement(input({ projectRef: { ...usedTrial, org: "previous-owner" } }));
    expect(d).toMatchObject({ allowed: false, code: "trial_used" });
  });

  it("when the subscription is active, then a new project is paid (preferred over its unused trial)", () => {
    expect(decideEntitlement(input({ billing: { subscriptionStatus: "active" } }))).toEqual({
      allowed: true,
      plan: "paid",
    });
    expect(decideEntitlement(input({ billing: { subscriptionStatus: "trialing" } }))).toEqual({
      allowed: true,
      plan: "paid",
    });
  });

  it("when the org has an unused free grant, then free is preferred over paid", () => {
    const d = decideEntitlement(
      input({ billing: { subscriptionStatus: "active", freeInstances: 1 } }),
    );
    expect(d).toEqual({ allowed: true, plan: "free" });
  });

  it("when every free grant is used by other live instances, then the next one is paid", () => {
    const d = decideEntitlement(
      input({
        billing: { subscriptionStatus: "active", freeInstances: 1 },
        instances: [{ ref: OTHER, plan: "free", state: "Running" }],
      }),
    );
    expect(d).toEqual({ allowed: true, plan: "paid" });
  });

  it("when the other free instance is Deleted or Failed, then its grant is available again", () => {
    for (const state of ["Deleted", "Failed", "Deleting"] as const) {
      const d = decideEntitlement(
        input({ billing: { freeInstances: 1 }, instances: [{ ref: OTHER, plan: "free", state }] }),
      );
      expect(d).toEqual({ allowed: true, plan: "free" });
    }
  });

  it("when past_due within the grace period, then paid is still allowed; after it, subscription_lapsed", () => {
    const within = {
      subscriptionStatus: "past_due",
      paymentFailedAt: new Date(NOW.getTime() - 47 * H),
    };
    expect(decideEntitlement(input({ billing: within, projectRef: usedTrial }))).toEqual({
      allowed: true,
      plan: "paid",
    });
    const beyond = {
      subscriptionStatus: "past_due",
      paymentFailedAt: new Date(NOW.getTime() - 48 * H),
    };
    expect(decideEntitlement(input({ billing: beyond, projectRef: usedTrial }))).toMatchObject({
      allowed: false,
      code: "subscription_lapsed",
    });
  });

  it("when the subscription is canceled or unpaid and the trial is used, then subscription_lapsed", () => {
    for (const subscriptionStatus of ["canceled", "unpaid"]) {
      const d = decideEntitlement(
        input({ billing: { subscriptionStatus }, projectRef: usedTrial }),
      );
      expect(d).toMatchObject({ allowed: false, code: "subscription_lapsed" });
    }
  });

  it("when the subscription is canceled but the project never had a trial, then it may still use its trial", () => {
    const d = decideEntitlement(input({ billing: { subscriptionStatus: "canceled" } }));
    expect(d).toMatchObject({ allowed: true, plan: "trial" });
  });

  it("when the subscription is incomplete and the trial is used, then payment_required", () => {
    const d = decideEntitlement(
      input({ billing: { subscriptionStatus: "incomplete" }, projectRef: usedTrial }),
    );
    expect(d).toMatchObject({ allowed: false, code: "payment_required" });
  });

  it("when a live instance exists, then it keeps its plan while the plan holds", () => {
    const paid = decideEntitlement(
      input({
        billing: { subscriptionStatus: "active", freeInstances: 5 },
        instances: [{ ref: REF, plan: "paid", state: "Running" }],
      }),
    );
    expect(paid).toEqual({ allowed: true, plan: "paid" });
    const trial = decideEntitlement(
      input({
        billing: { subscriptionStatus: "active" },
        projectRef: runningTrial,
        instances: [{ ref: REF, plan: "trial", state: "Running" }],
      }),
    );
    expect(trial).toEqual({ allowed: true, plan: "trial", trialEndsAt: runningTrial.trialEndsAt });
  });

  it("when a live trial instance's trial has ended but the org now pays, then it moves to paid", () => {
    const d = decideEntitlement(
      input({
        billing: { subscriptionStatus: "active" },
        projectRef: usedTrial,
        instances: [{ ref: REF, plan: "trial", state: "Running" }],
      }),
    );
    expect(d).toEqual({ allowed: true, plan: "paid" });
  });

  it("when a live paid instance's subscription lapsed, then it is refused", () => {
    const d = decideEntitlement(
      input({
        billing: { subscriptionStatus: "canceled" },
        projectRef: usedTrial,
        instances: [{ ref: REF, plan: "paid", state: "Running" }],
      }),
    );
    expect(d).toMatchObject({ allowed: false, code: "subscription_lapsed" });
  });

  const plans = fc.constantFrom<Plan>("trial", "paid", "free");
  const states = fc.constantFrom<InstanceState>(
    "Requested",
    "Deploying",
    "Configuring",
    "Verifying",
    "Running",
    "Deleting",
    "Deleted",
    "Failed",
  );
  const statuses = fc.option(
    fc.constantFrom(
      "active",
      "trialing",
      "past_due",
      "canceled",
      "unpaid",
      "incomplete",
      "incomplete_expired",
      "paused",
    ),
    { nil: undefined },
  );
  const arbInput = fc.record({
    status: statuses,
    failedHoursAgo: fc.option(fc.integer({ min: 0, max: 200 }), { nil: undefined }),
    free: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
    trial: fc.constantFrom("unused", "running", "used"),
    instances: fc.uniqueArray(
      fc.record({
        ref: fc.constantFrom(REF, OTHER, "bbbbbbbbbbbbbbbbbbbb", "cccccccccccccccccccc"),
        plan: plans,
        state: states,
      }),
      { maxLength: 4, selector: (i) => i.ref },
    ),
  });
  type Arb = typeof arbInput extends fc.Arbitrary<infer T> ? T : never;

  function build(a: Arb): EntitlementInput {
    return input({
      billing: {
        subscriptionStatus: a.status,
        paymentFailedAt:
          a.failedHoursAgo === undefined
            ? undefined
            : new Date(NOW.getTime() - a.failedHoursAgo * H),
        freeInstances: a.free,
      },
      projectRef:
        a.trial === "unused" ? undefined : a.trial === "running" ? runningTrial : usedTrial,
      instances: a.instances,
    });
  }

  it("when anything is decided, then a refusal never happens while a trial is available, and free never exceeds the grant", () => {
    fc.assert(
      fc.property(arbInput, (a) => {
        const inp = build(a);
        const d = decideEntitlement(inp);
        if (a.trial !== "used") expect(d.allowed).toBe(true);
        if (d.allowed && d.plan === "free") {
          const othersFree = inp.instances.filter(
            (i) =>
              i.ref !== REF &&
              i.plan === "free" &&
              !["Deleted", "Failed", "Deleting"].includes(i.state),
          ).length;
          expect(othersFree).toBeLessThan(a.free ?? 0);
        }
        if (d.allowed && d.plan === "trial") {
          // The trial end never moves once recorded.
          if (a.trial === "running") expect(d.trialEndsAt).toEqual(runningTrial.trialEndsAt);
          expect(d.trialEndsAt!.getTime()).toBeGreaterThan(NOW.getTime());
        }
        if (d.allowed && d.plan === "paid") {
          expect(["active", "trialing", "past_due"]).toContain(a.status);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("when the order of the org's instances changes, then the decision does not", () => {
    fc.assert(
      fc.property(arbInput, (a) => {
        const inp = build(a);
        const reversed = [...inp.instances].reverse();
        expect(decideEntitlement({ ...inp, instances: reversed })).toEqual(decideEntitlement(inp));
      }),
      { numRuns: 200 },
    );
  });
});
