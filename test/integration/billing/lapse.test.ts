import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { checkEntitlement } from "../../../lib/billing/entitlement.js";
import { findLapsedOrgs } from "../../../lib/billing/lapse.js";
import { syncSubscriptionQuantity } from "../../../lib/billing/subscription.js";
import { listAllInstances, listInstances } from "../../../lib/instances/store.js";
import { runReconciler } from "../../../lib/reconciler/index.js";
import type { Services } from "../../../lib/services.js";
import type { TestClient } from "../../helpers/client.js";
import { randomRef } from "../../helpers/platform.js";
import {
  addInstance,
  connectOrg,
  deliverAll,
  installation,
  markTrialUsed,
  setInstanceState,
  startBillingEnv,
  subscribe,
  summaryOf,
  type BillingEnv,
} from "./helpers.js";

const H = 3600_000;

/**
 * The reconciler's pass (lib/reconciler), then what the provisioning consumer does with each
 * deprovision it requested (modeled on the rows: Deleted, then the quantity sync).
 */
async function reconcileLapsed(services: Services, client: TestClient): Promise<string[]> {
  const before = await listAllInstances(services);
  const report = await runReconciler(services, client.context("reconciler"));
  const after = await listAllInstances(services);
  const requested = after
    .filter((i) => i.state === "Deleting" && i.operationReason === "payment_lapsed")
    .filter((i) => before.some((b) => b.ref === i.ref && b.state !== "Deleting"));
  expect(report.lapsedDeprovisioned).toBe(requested.length);
  for (const i of requested) {
    await setInstanceState(services, i.org, i.ref, "Deleted");
    await syncSubscriptionQuantity(services, i.org);
  }
  return requested.map((i) => i.ref);
}

describe("lapsed subscriptions", () => {
  let env: BillingEnv;
  beforeAll(async () => {
    env = await startBillingEnv();
  });
  afterAll(async () => {
    await env.close();
  });

  const lapsedOrgs = async () =>
    (await findLapsedOrgs(env.services, env.clock.now())).map((l) => l.org);

  it("when the subscription is canceled, then the org's paid instances (only) are deprovisioned by the reconciler", async () => {
    const a = await connectOrg(env);
    const { subscriptionId } = await subscribe(env, a);
    const paid1 = await addInstance(env.services, a.org, "paid");
    const paid2 = await addInstance(env.services, a.org, "paid", "Configuring");
    const trial = await addInstance(env.services, a.org, "trial");
    await markTrialUsed(env, a.org, paid1);
    await syncSubscriptionQuantity(env.services, a.org);
    expect(await lapsedOrgs()).not.toContain(a.org);

    await deliverAll(
      env,
      a.client,
      await env.stripe.setSubscriptionStatus(subscriptionId, "canceled"),
    );
    expect((await installation(env.services, a.org)).subscriptionStatus).toBe("canceled");
    const lapsed = (await findLapsedOrgs(env.services, env.clock.now())).find(
      (l) => l.org === a.org,
    );
    expect(lapsed).toMatchObject({ reason: "canceled", paidRefs: [paid1, paid2].sort() });
    await expect(checkEntitlement(env.services, a.org, paid1)).rejects.toMatchObject({
      status: 402,
      code: "subscription_lapsed",
    });

    const removed = await reconcileLapsed(env.services, a.client);
    expect(removed).toEqual(expect.arrayContaining([paid1, paid2]));
    const states = Object.fromEntries(
      (await listInstances(env.services, a.org)).map((i) => [i.ref, `${i.operation} ${i.state}`]),
    );
    // The seeded trial row has no VM in Azure, so the same run starts healing it: it is kept.
    expect(states).toEqual({
      [paid1]: "deprovision Deleted",
      [paid2]: "deprovision Deleted",
      [trial]: expect.stringMatching(/^(provision Running|heal Replacing)$/) as unknown,
    });
    expect(await lapsedOrgs()).not.toContain(a.org);
  });

  it("when a payment fails, then paid instances keep running through the grace period and go after it", async () => {
    const a = await connectOrg(env);
    const { subscriptionId } = await subscribe(env, a);
    const paid = await addInstance(env.services, a.org, "paid");
    await markTrialUsed(env, a.org, paid);
    await syncSubscriptionQuantity(env.services, a.org);

    await deliverAll(
      env,
      a.client,
      await env.stripe.setSubscriptionStatus(subscriptionId, "past_due"),
    );
    const row = await installation(env.services, a.org);
    expect(row.subscriptionStatus).toBe("past_due");
    const failedAt = (row.paymentFailedAt as Date).getTime();

    // Inside the grace period: still entitled, not lapsed.
    env.clock.offsetMs =
      failedAt + env.services.config.BILLING_GRACE_HOURS * H - 60_000 - Date.now();
    expect(await lapsedOrgs()).not.toContain(a.org);
    await expect(checkEntitlement(env.services, a.org, randomRef())).resolves.toMatchObject({
      plan: "paid",
    });

    // Past it: lapsed, refused, and the reconciler removes the paid instance.
    env.clock.advance(2 * 60_000);
    expect(await lapsedOrgs()).toContain(a.org);
    await expect(checkEntitlement(env.services, a.org, paid)).rejects.toMatchObject({
      code: "subscription_lapsed",
    });
    expect(await reconcileLapsed(env.services, a.client)).toContain(paid);
    expect(await lapsedOrgs()).not.toContain(a.org);
  });

  it("when the payment succeeds within the grace period, then nothing lapses and the failure is forgotten", async () => {
    const a = await connectOrg(env);
    const { subscriptionId } = await subscribe(env, a);
    await addInstance(env.services, a.org, "paid");
    await deliverAll(
      env,
      a.client,
      await env.stripe.setSubscriptionStatus(subscriptionId, "past_due"),
    );
    await deliverAll(
      env,
      a.client,
      await env.stripe.setSubscriptionStatus(subscriptionId, "active"),
    );
    env.clock.advance(env.services.config.BILLING_GRACE_HOURS * H * 2);
    expect(await lapsedOrgs()).not.toContain(a.org);
    const overview = await a.client.get("/api/billing");
    expect(summaryOf(overview).graceEndsAt).toBeNull();
    expect(summaryOf(overview).subscription?.status).toBe("active");
  });
});
