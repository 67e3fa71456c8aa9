import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { getEntity } from "../../../lib/storage/tables.js";
import type { StripeEvent } from "../../../local/simulators/stripe.js";
import { stripeFor } from "../../../lib/billing/stripe.js";
import {
  checkoutOf,
  connectOrg,
  deliver,
  deliverAll,
  errorOf,
  hookStatus,
  installation,
  startBillingEnv,
  summaryOf,
  type BillingEnv,
  type OrgHandle,
} from "./helpers.js";

describe("POST /api/webhooks/stripe", () => {
  let env: BillingEnv;
  beforeAll(async () => {
    env = await startBillingEnv();
  });
  afterAll(async () => {
    await env.close();
  });

  const eventRow = (id: string) =>
    getEntity<Record<string, unknown>>(env.services.tables.client("stripeEvents"), id, "");

  /** An org with an open (not yet paid) checkout and the events that paying it emits. */
  async function paidCheckout(): Promise<{ a: OrgHandle; events: StripeEvent[] }> {
    const a = await connectOrg(env);
    const res = await a.client.post("/api/billing/checkout");
    expect(res.status).toBe(200);
    const events = await env.stripe.completeCheckout(checkoutOf(res).sessionId);
    return { a, events };
  }

  it("when the signature is wrong or the body was changed, then it is a 400 and nothing is stored", async () => {
    const { a, events } = await paidCheckout();
    const event = events.find((e) => e.type === "checkout.session.completed")!;
    const wrongSecret = await deliver(env, a.client, event, { secret: "whsec_not_ours" });
    expect(wrongSecret.status).toBe(400);
    expect(errorOf(wrongSecret).code).toBe("invalid_signature");
    const tampered = await deliver(env, a.client, event, {
      tamper: (p) => p.replace(a.org, "someone-else"),
    });
    expect(tampered.status).toBe(400);
    const unsigned = await a.client.post("/api/webhooks/stripe", {
      body: JSON.stringify(event),
      noOrigin: true,
    });
    expect(unsigned.status).toBe(400);
    expect(await eventRow(event.id)).toBeUndefined();
    expect((await installation(env.services, a.org)).stripeSubscriptionId).toBeUndefined();
  });

  it("when a captured delivery is replayed 10 minutes later, then the stale timestamp is a 400 and nothing is stored", async () => {
    const { a, events } = await paidCheckout();
    const event = events.find((e) => e.type === "customer.subscription.created")!;
    const stale = await deliver(env, a.client, event, { timestamp: env.clock.seconds() - 600 });
    expect(stale.status).toBe(400);
    expect(errorOf(stale).code).toBe("invalid_signature");
    expect(await eventRow(event.id)).toBeUndefined();
    expect((await installation(env.services, a.org)).subscriptionStatus).toBeUndefined();
  });

  it("when every event is delivered twice, then the second answers duplicate and changes nothing", async () => {
    const { a, events } = await paidCheckout();
    for (const event of events) {
      const first = await deliver(env, a.client, event);
      expect(first.status).toBe(200);
      expect(["processed", "ignored"]).toContain(hookStatus(first));
    }
    const after = await installation(env.services, a.org);
    for (const event of events) {
      const again = await deliver(env, a.client, event);
      expect(again.status).toBe(200);
      expect(hookStatus(again)).toBe("duplicate");
      expect((await eventRow(event.id))?.status).toBe("done");
    }
    const final = await installation(env.services, a.org);
    expect(final.etag).toBe(after.etag);
    expect(final.subscriptionStatus).toBe("active");
  });

  it("when Stripe redelivers an event 10 minutes later with a fresh signature, then it is a duplicate with no effect", async () => {
    const { a, events } = await paidCheckout();
    await deliverAll(env, a.client, events);
    const before = await installation(env.services, a.org);
    env.clock.advance(10 * 60_000);
    for (const event of events) {
      const res = await deliver(env, a.client, event);
      expect(res.status).toBe(200);
      expect(hookStatus(res)).toBe("duplicate");
    }
    expect((await installation(env.services, a.org)).etag).toBe(before.etag);
  });

  it("when the events arrive out of order, then the org ends in Stripe's current state", async () => {
    const { a, events } = await paidCheckout();
    const sub = env.stripe.state().subscriptions.find((s) => s.metadata.org === a.org)!;
    const email = `late+${a.org}@example.com`;
    await (await stripeFor(env.services)).customers.update(sub.customer, { email });
    const failed = await env.stripe.setSubscriptionStatus(sub.id, "past_due");
    const recovered = await env.stripe.setSubscriptionStatus(sub.id, "active");
    // The recovery first, then the checkout, and the failure last: payloads alone would say past_due.
    await deliverAll(env, a.client, [...recovered, ...events, ...failed]);
    const row = await installation(env.services, a.org);
    expect(row.stripeSubscriptionId).toBe(sub.id);
    expect(row.subscriptionStatus).toBe("active");
    expect(row.paymentFailedAt === undefined || (row.paymentFailedAt as Date).getTime() === 0).toBe(
      true,
    );
    // The failure arrived after its invoice was paid: no payment-failed mail.
    expect(env.platform.loops!.to(email)).toHaveLength(0);
  });

  it("when a payment fails, then the payer is mailed once per invoice and the grace period starts", async () => {
    const { a, events } = await paidCheckout();
    await deliverAll(env, a.client, events);
    const sub = env.stripe.state().subscriptions.find((s) => s.metadata.org === a.org)!;
    const stripe = await stripeFor(env.services);
    const email = `billing+${a.org}@example.com`;
    await stripe.customers.update(sub.customer, { email });
    const failed = await env.stripe.setSubscriptionStatus(sub.id, "past_due");
    await deliverAll(env, a.client, failed);
    const row = await installation(env.services, a.org);
    expect(row.subscriptionStatus).toBe("past_due");
    expect(row.paymentFailedAt).toBeInstanceOf(Date);
    const mails = () => env.platform.loops!.to(email);
    expect(mails()).toHaveLength(1);
    expect(mails()[0]!.transactionalId).toBe(env.services.config.LOOPS_TX_PAYMENT_FAILED);
    expect(mails()[0]!.dataVariables.org).toBe(a.org);
    expect(String(mails()[0]!.dataVariables.graceEndsAt)).toMatch(/^\d{4}-/);

    // The same failure redelivered, and a later failed retry of the same invoice: no second mail.
    for (const e of failed) expect(hookStatus(await deliver(env, a.client, e))).toBe("duplicate");
    const retry = failed.find((e) => e.type === "invoice.payment_failed")!;
    const res = await deliver(env, a.client, { ...retry, id: `${retry.id}x` });
    expect(hookStatus(res)).toBe("processed");
    expect(mails()).toHaveLength(1);

    const billing = await a.client.get("/api/billing");
    expect(summaryOf(billing).graceEndsAt).toBe(
      new Date(
        (row.paymentFailedAt as Date).getTime() +
          env.services.config.BILLING_GRACE_HOURS * 3600_000,
      ).toISOString(),
    );
  });

  it("when processing fails midway, then the event is not marked done and a redelivery processes it", async () => {
    const { a, events } = await paidCheckout();
    const created = events.find((e) => e.type === "customer.subscription.created")!;
    // Three failures exhaust the client's two retries.
    env.stripe.injectFault({ status: 500, count: 3, pathPrefix: "/v1/subscriptions" });
    const crashed = await deliver(env, a.client, created);
    expect(crashed.status).toBe(503);
    expect(crashed.text).not.toContain("sk_test");
    expect((await eventRow(created.id))?.status).toBe("failed");
    expect((await installation(env.services, a.org)).subscriptionStatus).toBeUndefined();

    const redelivered = await deliver(env, a.client, created);
    expect(redelivered.status).toBe(200);
    expect(hookStatus(redelivered)).toBe("processed");
    expect((await eventRow(created.id))?.status).toBe("done");
    expect((await installation(env.services, a.org)).subscriptionStatus).toBe("active");
  });

  it("when a delivery died while holding the event, then a redelivery waits out the lease and then processes it", async () => {
    const { a, events } = await paidCheckout();
    const created = events.find((e) => e.type === "customer.subscription.created")!;
    const now = env.clock.now();
    await env.services.tables.client("stripeEvents").createEntity({
      partitionKey: created.id,
      rowKey: "",
      type: created.type,
      status: "processing",
      leaseUntil: new Date(now.getTime() + 60_000),
      attempts: 1,
      receivedAt: now,
    });
    const busy = await deliver(env, a.client, created);
    expect(busy.status).toBe(409);
    expect(errorOf(busy).code).toBe("event_in_progress");
    env.clock.advance(61_000);
    const later = await deliver(env, a.client, created);
    expect(later.status).toBe(200);
    expect(hookStatus(later)).toBe("processed");
    expect((await eventRow(created.id))?.attempts).toBe(2);
    expect((await installation(env.services, a.org)).subscriptionStatus).toBe("active");
  });

  it("when the subscription is canceled, then the installation records it whatever the event says", async () => {
    const { a, events } = await paidCheckout();
    await deliverAll(env, a.client, events);
    const sub = env.stripe.state().subscriptions.find((s) => s.metadata.org === a.org)!;
    // An old "updated" event delivered after the cancellation must not resurrect the subscription.
    const oldUpdate = events.find((e) => e.type === "customer.subscription.created")!;
    const canceled = await env.stripe.setSubscriptionStatus(sub.id, "canceled");
    await deliverAll(env, a.client, canceled);
    await deliver(env, a.client, {
      ...oldUpdate,
      id: `${oldUpdate.id}old`,
      type: "customer.subscription.updated",
    });
    const row = await installation(env.services, a.org);
    expect(row.subscriptionStatus).toBe("canceled");
    const overview = await a.client.get("/api/billing");
    expect(summaryOf(overview).plan).toBe("none");
    expect(summaryOf(overview).subscription?.status).toBe("canceled");
  });

  it("when an event is of a type billing does not handle, then it is acknowledged and ignored", async () => {
    const { a, events } = await paidCheckout();
    const customerCreated = env.stripe.state().events.find((e) => e.type === "customer.created")!;
    const res = await deliver(env, a.client, customerCreated);
    expect(res.status).toBe(200);
    expect(hookStatus(res)).toBe("ignored");
    expect(events.length).toBeGreaterThan(0);
  });
});
