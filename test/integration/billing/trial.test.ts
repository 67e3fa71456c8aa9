import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { setFreeInstances } from "../../../lib/billing/account.js";
import { checkEntitlement } from "../../../lib/billing/entitlement.js";
import { recordTrialStart } from "../../../lib/instances/project-refs.js";
import { getProjectRef } from "../../../lib/instances/project-refs.js";
import { randomRef } from "../../helpers/platform.js";
import {
  addInstance,
  connectOrg,
  setInstanceState,
  startBillingEnv,
  summaryOf,
  type BillingEnv,
} from "./helpers.js";

const H = 3600_000;

describe("trials and free grants", () => {
  let env: BillingEnv;
  beforeAll(async () => {
    env = await startBillingEnv();
  });
  afterAll(async () => {
    await env.close();
  });

  /** What the provisioning PUT does with billing: check, then record a trial. */
  async function provision(org: string, ref: string) {
    const decision = await checkEntitlement(env.services, org, ref);
    if (decision.plan === "trial") {
      const recorded = await recordTrialStart(env.services, org, ref, decision.trialEndsAt!);
      return { plan: decision.plan, trialEndsAt: recorded.trialEndsAt };
    }
    return { plan: decision.plan, trialEndsAt: undefined };
  }

  it("when a trial project is deleted and provisioned again, then the trial resumes with its first end and is never restarted", async () => {
    const a = await connectOrg(env);
    const ref = randomRef();
    const first = await provision(a.org, ref);
    expect(first.plan).toBe("trial");
    expect(first.trialEndsAt!.getTime()).toBeCloseTo(
      env.clock.now().getTime() + env.services.config.TRIAL_HOURS * H,
      -4,
    );
    await addInstance(env.services, a.org, "trial", "Running", ref);

    // Deleted half-way through and provisioned again: same end, not a new trial.
    env.clock.advance((env.services.config.TRIAL_HOURS / 2) * H);
    await setInstanceState(env.services, a.org, ref, "Deleted");
    const again = await provision(a.org, ref);
    expect(again).toEqual({ plan: "trial", trialEndsAt: first.trialEndsAt });
    const row = await getProjectRef(env.services, ref);
    expect(row?.trialEndsAt).toEqual(first.trialEndsAt);

    // After the end: refused, whatever happens to the instance row.
    env.clock.advance(env.services.config.TRIAL_HOURS * H);
    await expect(checkEntitlement(env.services, a.org, ref)).rejects.toMatchObject({
      status: 402,
      code: "trial_used",
    });
    // Recording again (a retried or racing PUT) never moves the recorded trial.
    const late = await recordTrialStart(
      env.services,
      a.org,
      ref,
      new Date(env.clock.now().getTime() + 72 * H),
    );
    expect(late.trialEndsAt).toEqual(first.trialEndsAt);
    await expect(checkEntitlement(env.services, a.org, ref)).rejects.toMatchObject({
      code: "trial_used",
    });
  });

  it("when two provisions of the same project race, then one trial is recorded", async () => {
    const a = await connectOrg(env);
    const ref = randomRef();
    const ends = [1, 2, 3, 4].map((i) => new Date(env.clock.now().getTime() + i * H));
    const results = await Promise.all(
      ends.map((end) => recordTrialStart(env.services, a.org, ref, end)),
    );
    const recorded = await getProjectRef(env.services, ref);
    expect(results.every((r) => r.trialEndsAt.getTime() === recorded!.trialEndsAt!.getTime())).toBe(
      true,
    );
  });

  it("when another org owns the project ref, then recording a trial for it is a 409", async () => {
    const a = await connectOrg(env);
    const b = await connectOrg(env);
    const ref = randomRef();
    await provision(a.org, ref);
    await expect(
      recordTrialStart(env.services, b.org, ref, new Date(env.clock.now().getTime() + H)),
    ).rejects.toMatchObject({
      status: 409,
    });
  });

  it("when an operator grants free instances, then they are used first and only up to the grant", async () => {
    const a = await connectOrg(env);
    await setFreeInstances(env.services, a.org, 1);
    const ref1 = randomRef();
    expect((await provision(a.org, ref1)).plan).toBe("free");
    await addInstance(env.services, a.org, "free", "Running", ref1);
    // The grant is used: the next project falls back to its trial.
    expect((await provision(a.org, randomRef())).plan).toBe("trial");
    const overview = await a.client.get("/api/billing");
    expect(summaryOf(overview).freeInstances).toBe(1);
    expect(summaryOf(overview).instances.free).toBe(1);
  });
});
