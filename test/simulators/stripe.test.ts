import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import Stripe from "stripe";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  startStripeSimulator,
  type StripeEvent,
  type StripeSimOptions,
  type StripeSimulator,
} from "../../local/simulators/stripe.js";

const SECRET_KEY = "sk_test_supafana_sim_0001";
const WEBHOOK_SECRET = "whsec_supafana_sim_secret";
const PRICE_ID = "price_supafana_project_monthly";

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** Stands in for the app's webhook endpoint: records what it receives, answers `status`. */
async function startReceiver(): Promise<{
  url: string;
  received: Received[];
  status: { value: number };
  close(): Promise<void>;
}> {
  const received: Received[] = [];
  const status = { value: 200 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      res.writeHead(status.value, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/api/webhooks/stripe`,
    received,
    status,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}

function client(sim: StripeSimulator, key = SECRET_KEY, maxNetworkRetries = 0): Stripe {
  return new Stripe(key, {
    host: "127.0.0.1",
    port: sim.port,
    protocol: "http",
    maxNetworkRetries,
    telemetry: false,
  });
}

function eventTypes(events: StripeEvent[]): string[] {
  return events.map((e) => e.type);
}

describe("stripe simulator", () => {
  let sim: StripeSimulator;
  let stripe: Stripe;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;

  async function start(extra: Partial<StripeSimOptions> = {}): Promise<void> {
    sim = await startStripeSimulator({
      secretKey: SECRET_KEY,
      webhookSecret: WEBHOOK_SECRET,
      priceId: PRICE_ID,
      unitAmount: 10_000,
      webhookUrl: receiver.url,
      ...extra,
    });
    stripe = client(sim);
  }

  beforeEach(async () => {
    receiver = await startReceiver();
    await start();
  });

  afterEach(async () => {
    await sim.close();
    await receiver.close();
  });

  /** Customer + completed checkout for `quantity` projects; returns ids. */
  async function subscribe(
    quantity = 2,
    org = "org_acme",
  ): Promise<{ customerId: string; sessionId: string; subscriptionId: string }> {
    const customer = await stripe.customers.create({ email: "owner@acme.test", metadata: { org } });
    const session = await stripe.checkout.sessions.create({
      mode: "subscription",
      customer: customer.id,
      line_items: [{ price: PRICE_ID, quantity }],
      subscription_data: { metadata: { org } },
      success_url: "http://localhost:5173/billing/success?session={CHECKOUT_SESSION_ID}",
      cancel_url: "http://localhost:5173/billing",
    });
    await sim.completeCheckout(session.id);
    const sub = sim.state().subscriptions.find((s) => s.customer === customer.id);
    if (!sub) throw new Error("subscription missing");
    return { customerId: customer.id, sessionId: session.id, subscriptionId: sub.id };
  }

  describe("authentication", () => {
    it("when the API key is wrong, then the SDK raises an authentication error (401)", async () => {
      const bad = client(sim, "sk_test_wrong_key_9999");
      await expect(bad.customers.create({ email: "a@b.test" })).rejects.toMatchObject({
        type: "StripeAuthenticationError",
        statusCode: 401,
        rawType: "invalid_request_error",
      });
      await expect(bad.customers.retrieve("cus_missing")).rejects.toThrow(
        /Invalid API Key provided: sk_test_\*+9999/,
      );
      expect(sim.state().customers).toHaveLength(0);
    });
  });

  describe("customers", () => {
    it("when a customer is created, retrieved and updated, then each call reflects the stored customer", async () => {
      const created = await stripe.customers.create({
        email: "owner@acme.test",
        name: "Acme",
        metadata: { org: "org_acme", plan: "pro" },
      });
      expect(created.id).toMatch(/^cus_/);
      expect(created).toMatchObject({
        object: "customer",
        livemode: false,
        email: "owner@acme.test",
      });
      await stripe.customers.create({ email: "other@b.test", metadata: { org: "org_other" } });

      const fetched = await stripe.customers.retrieve(created.id);
      expect(fetched).toMatchObject({
        id: created.id,
        name: "Acme",
        metadata: { org: "org_acme" },
      });

      const updated = await stripe.customers.update(created.id, {
        name: "Acme Inc",
        metadata: { plan: "", region: "eu" },
      });
      expect(updated.name).toBe("Acme Inc");
      expect(updated.metadata).toEqual({ org: "org_acme", region: "eu" });

      expect(eventTypes(sim.state().events)).toEqual([
        "customer.created",
        "customer.created",
        "customer.updated",
      ]);
      expect(sim.state().events[2]?.data.previous_attributes).toMatchObject({ name: "Acme" });
    });

    it("when a customer id does not exist, then retrieve fails with 404 resource_missing", async () => {
      await expect(stripe.customers.retrieve("cus_nope")).rejects.toMatchObject({
        type: "StripeInvalidRequestError",
        statusCode: 404,
        code: "resource_missing",
        param: "id",
        message: "No such customer: 'cus_nope'",
      });
    });

    it("when a parameter is unknown to the endpoint, then the call fails with parameter_unknown", async () => {
      await expect(
        stripe.customers.create({
          email: "a@b.test",
          emial: "typo",
        } as Stripe.CustomerCreateParams),
      ).rejects.toMatchObject({ statusCode: 400, code: "parameter_unknown", param: "emial" });
    });
  });

  describe("checkout", () => {
    it("when a subscription session is created, then it is open, priced per project and links to the hosted page", async () => {
      const customer = await stripe.customers.create({ email: "owner@acme.test" });
      const session = await stripe.checkout.sessions.create({
        mode: "subscription",
        customer: customer.id,
        client_reference_id: "org_acme",
        line_items: [{ price: PRICE_ID, quantity: 3 }],
        metadata: { org: "org_acme" },
        subscription_data: { metadata: { org: "org_acme" } },
        success_url: "http://localhost:5173/ok?session={CHECKOUT_SESSION_ID}",
        cancel_url: "http://localhost:5173/cancel",
        allow_promotion_codes: true,
      });
      expect(session.id).toMatch(/^cs_test_/);
      expect(session).toMatchObject({
        object: "checkout.session",
        status: "open",
        payment_status: "unpaid",
        mode: "subscription",
        customer: customer.id,
        client_reference_id: "org_acme",
        amount_total: 30_000,
        currency: "usd",
        allow_promotion_codes: true,
        metadata: { org: "org_acme" },
        subscription: null,
      });
      expect(session.url).toBe(`${sim.url}/checkout/${session.id}`);

      const page = await fetch(session.url ?? "");
      expect(page.status).toBe(200);
      const html = await page.text();
      expect(html).toContain(">Pay</button>");
      expect(html).toContain(`/checkout/${session.id}/complete`);
    });

    it("when the customer pays on the hosted page, then the subscription is created, events are delivered and the browser is sent to success_url", async () => {
      const customer = await stripe.customers.create({
        email: "owner@acme.test",
        metadata: { org: "org_acme" },
      });
      await sim.flushDeliveries();
      receiver.received.length = 0;
      const session = await stripe.checkout.sessions.create({
        mode: "subscription",
        customer: customer.id,
        line_items: [{ price: PRICE_ID, quantity: 2 }],
        subscription_data: { metadata: { org: "org_acme" } },
        success_url: "http://localhost:5173/ok?session={CHECKOUT_SESSION_ID}",
      });

      const res = await fetch(`${sim.url}/checkout/${session.id}/complete`, {
        method: "POST",
        redirect: "manual",
      });
      expect(res.status).toBe(303);
      expect(res.headers.get("location")).toBe(`http://localhost:5173/ok?session=${session.id}`);

      const done = sim.state().checkoutSessions.find((s) => s.id === session.id);
      expect(done).toMatchObject({ status: "complete", payment_status: "paid", url: null });
      expect(done?.subscription).toMatch(/^sub_/);

      const subId = done?.subscription;
      if (typeof subId !== "string") throw new Error("subscription not a string id");
      const sub = await stripe.subscriptions.retrieve(subId);
      expect(sub).toMatchObject({
        object: "subscription",
        status: "active",
        customer: customer.id,
        cancel_at_period_end: false,
        metadata: { org: "org_acme" },
      });
      const item = sub.items.data[0];
      expect(item?.id).toMatch(/^si_/);
      expect(item?.quantity).toBe(2);
      expect(item?.price.id).toBe(PRICE_ID);
      expect(item?.current_period_end).toBeGreaterThan(sub.start_date + 27 * 86_400);
      expect(sub.latest_invoice).toMatch(/^in_/);

      const types = receiver.received.map((r) => (JSON.parse(r.body) as { type: string }).type);
      expect(types).toEqual([
        "checkout.session.completed",
        "customer.subscription.created",
        "invoice.paid",
      ]);
      expect(sim.deliveries.slice(-3).map((d) => d.status)).toEqual([200, 200, 200]);
      const paid = sim.state().invoices.find((i) => i.id === sub.latest_invoice);
      expect(paid).toMatchObject({ status: "paid", amount_due: 20_000, amount_paid: 20_000 });
    });

    it("when completeCheckout is called, then it returns the emitted events with full Stripe event envelopes", async () => {
      const customer = await stripe.customers.create({ email: "owner@acme.test" });
      const session = await stripe.checkout.sessions.create({
        mode: "subscription",
        customer: customer.id,
        line_items: [{ price: PRICE_ID, quantity: 1 }],
        success_url: "http://localhost:5173/ok",
      });
      const events = await sim.completeCheckout(session.id);
      expect(eventTypes(events)).toEqual([
        "checkout.session.completed",
        "customer.subscription.created",
        "invoice.paid",
      ]);
      const completed = events[0];
      expect(completed).toMatchObject({
        object: "event",
        livemode: false,
        pending_webhooks: 1,
        api_version: Stripe.API_VERSION,
        data: { object: { object: "checkout.session", id: session.id, status: "complete" } },
      });
      expect(completed?.id).toMatch(/^evt_/);
      await expect(sim.completeCheckout(session.id)).rejects.toThrow(/is complete/);
    });

    it("when the session has no customer, then paying creates one from customer_email", async () => {
      const session = await stripe.checkout.sessions.create({
        mode: "subscription",
        customer_email: "new@acme.test",
        line_items: [{ price: PRICE_ID, quantity: 1 }],
        success_url: "http://localhost:5173/ok",
      });
      const events = await sim.completeCheckout(session.id);
      expect(eventTypes(events)[0]).toBe("customer.created");
      const customer = sim.state().customers[0];
      expect(customer?.email).toBe("new@acme.test");
      expect(sim.state().subscriptions[0]?.customer).toBe(customer?.id);
    });

    it("when subscription_data asks for a trial, then the subscription starts trialing with a zero invoice", async () => {
      const customer = await stripe.customers.create({ email: "owner@acme.test" });
      const session = await stripe.checkout.sessions.create({
        mode: "subscription",
        customer: customer.id,
        line_items: [{ price: PRICE_ID, quantity: 1 }],
        subscription_data: { trial_period_days: 14 },
        success_url: "http://localhost:5173/ok",
      });
      await sim.completeCheckout(session.id);
      const sub = sim.state().subscriptions[0];
      expect(sub?.status).toBe("trialing");
      expect((sub?.trial_end ?? 0) - (sub?.trial_start ?? 0)).toBe(14 * 86_400);
      const session2 = sim.state().checkoutSessions.find((s) => s.id === session.id);
      expect(session2?.payment_status).toBe("no_payment_required");
    });

    it("when a line item lacks quantity or names an unknown price, then creation fails with a param error", async () => {
      await expect(
        stripe.checkout.sessions.create({
          mode: "subscription",
          line_items: [{ price: PRICE_ID }],
          success_url: "http://localhost:5173/ok",
        }),
      ).rejects.toMatchObject({
        statusCode: 400,
        code: "parameter_missing",
        param: "line_items[0][quantity]",
      });
      await expect(
        stripe.checkout.sessions.create({
          mode: "subscription",
          line_items: [{ price: "price_other", quantity: 1 }],
          success_url: "http://localhost:5173/ok",
        }),
      ).rejects.toMatchObject({
        statusCode: 400,
        code: "resource_missing",
        param: "line_items[0][price]",
      });
      await expect(
        stripe.checkout.sessions.create({
          mode: "subscription",
          customer: "cus_missing",
          line_items: [{ price: PRICE_ID, quantity: 1 }],
        }),
      ).rejects.toMatchObject({ statusCode: 400, code: "resource_missing", param: "customer" });
    });
    it("when publicBaseUrl is set, then hosted links use it", async () => {
      await sim.close();
      await start({ publicBaseUrl: "http://localhost:12111/" });
      const session = await stripe.checkout.sessions.create({
        mode: "subscription",
        line_items: [{ price: PRICE_ID, quantity: 1 }],
      });
      expect(session.url).toBe(`http://localhost:12111/checkout/${session.id}`);
    });
  });

  describe("webhooks", () => {
    it("when an event is delivered, then the SDK's constructEvent accepts the signature and rejects a tampered payload", async () => {
      const { subscriptionId } = await subscribe();
      const delivered = receiver.received.find((r) =>
        r.body.includes('"customer.subscription.created"'),
      );
      if (!delivered) throw new Error("no delivery");
      const header = String(delivered.headers["stripe-signature"]);
      expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
      expect(delivered.headers["content-type"]).toContain("application/json");

      const event = stripe.webhooks.constructEvent(delivered.body, header, WEBHOOK_SECRET);
      expect(event.type).toBe("customer.subscription.created");
      expect((event.data.object as { id: string }).id).toBe(subscriptionId);

      const tampered = delivered.body.replace(subscriptionId, "sub_forged");
      expect(() => stripe.webhooks.constructEvent(tampered, header, WEBHOOK_SECRET)).toThrow(
        Stripe.errors.StripeSignatureVerificationError,
      );
      expect(() =>
        stripe.webhooks.constructEvent(delivered.body, header, "whsec_someone_else"),
      ).toThrow(Stripe.errors.StripeSignatureVerificationError);
    });

    it("when signEvent is given an old timestamp, then constructEvent rejects it as stale; a custom secret signs with that secret", async () => {
      await subscribe();
      const event = sim.state().events[0];
      if (!event) throw new Error("no event");
      const fresh = sim.signEvent(event);
      expect(
        stripe.webhooks.constructEvent(fresh.payload, fresh.signature, WEBHOOK_SECRET).id,
      ).toBe(event.id);
      const stale = sim.signEvent(event, { timestamp: Math.floor(Date.now() / 1000) - 600 });
      expect(() =>
        stripe.webhooks.constructEvent(stale.payload, stale.signature, WEBHOOK_SECRET),
      ).toThrow(/tolerance/i);
      const other = sim.signEvent(event, { secret: "whsec_other" });
      expect(() =>
        stripe.webhooks.constructEvent(other.payload, other.signature, WEBHOOK_SECRET),
      ).toThrow(Stripe.errors.StripeSignatureVerificationError);
      expect(stripe.webhooks.constructEvent(other.payload, other.signature, "whsec_other").id).toBe(
        event.id,
      );
    });

    it("when the webhook endpoint fails, then deliver returns its status and the delivery log records it", async () => {
      await subscribe();
      const event = sim.state().events[0];
      if (!event) throw new Error("no event");
      receiver.status.value = 400;
      expect(await sim.deliver(event)).toBe(400);
      expect(sim.deliveries.at(-1)).toMatchObject({ eventId: event.id, status: 400 });
    });

    it("when autoDeliver is off, then events are recorded but not posted", async () => {
      await sim.close();
      receiver.received.length = 0;
      await start({ autoDeliver: false });
      await subscribe();
      expect(sim.state().events.length).toBeGreaterThan(0);
      expect(receiver.received).toHaveLength(0);
      expect(sim.deliveries).toHaveLength(0);
    });
  });

  describe("subscriptions", () => {
    it("when the quantity changes through subscriptions.update, then the item changes and customer.subscription.updated carries the previous items", async () => {
      const { subscriptionId } = await subscribe(2);
      const before = await stripe.subscriptions.retrieve(subscriptionId);
      const itemId = before.items.data[0]?.id ?? "";
      const updated = await stripe.subscriptions.update(subscriptionId, {
        items: [{ id: itemId, quantity: 5 }],
        proration_behavior: "create_prorations",
        metadata: { projects: "5" },
      });
      expect(updated.items.data).toHaveLength(1);
      expect(updated.items.data[0]).toMatchObject({ id: itemId, quantity: 5 });
      expect(updated.metadata).toEqual({ org: "org_acme", projects: "5" });

      await sim.flushDeliveries();
      const last = sim.state().events.at(-1);
      expect(last?.type).toBe("customer.subscription.updated");
      const prevItems = last?.data.previous_attributes?.items as {
        data: Array<{ quantity: number }>;
      };
      expect(prevItems.data[0]?.quantity).toBe(2);
      expect(last?.request.idempotency_key).toMatch(/^stripe-node-retry-/);
      expect(last?.request.id).toMatch(/^req_/);
      expect(receiver.received.at(-1)?.body).toContain('"customer.subscription.updated"');
    });
    it("when listing subscriptions, then canceled ones appear only with status=all", async () => {
      const { customerId, subscriptionId } = await subscribe(1);
      await sim.setSubscriptionStatus(subscriptionId, "canceled");
      const open = await stripe.subscriptions.list({ customer: customerId });
      expect(open.data).toHaveLength(0);
      const all = await stripe.subscriptions.list({ customer: customerId, status: "all" });
      expect(all.data.map((s) => s.id)).toEqual([subscriptionId]);
      expect(all.data[0]?.status).toBe("canceled");
    });
    it("when cancel_at_period_end is set and the period advances, then the subscription ends", async () => {
      const { subscriptionId } = await subscribe(1);
      const updated = await stripe.subscriptions.update(subscriptionId, {
        cancel_at_period_end: true,
      });
      expect(updated.cancel_at_period_end).toBe(true);
      expect(updated.cancel_at).toBe(updated.items.data[0]?.current_period_end);
      const events = await sim.advancePeriod(subscriptionId);
      expect(eventTypes(events)).toEqual(["customer.subscription.deleted"]);
      expect((await stripe.subscriptions.retrieve(subscriptionId)).status).toBe("canceled");
    });

    it("when the period advances, then a renewal invoice is paid and the period moves forward", async () => {
      const { subscriptionId } = await subscribe(2);
      const before = await stripe.subscriptions.retrieve(subscriptionId);
      const events = await sim.advancePeriod(subscriptionId);
      expect(eventTypes(events)).toEqual(["invoice.paid", "customer.subscription.updated"]);
      const after = await stripe.subscriptions.retrieve(subscriptionId);
      expect(after.items.data[0]?.current_period_start).toBe(
        before.items.data[0]?.current_period_end,
      );
      const invoice = events[0]?.data.object;
      expect(invoice).toMatchObject({
        object: "invoice",
        billing_reason: "subscription_cycle",
        amount_paid: 20_000,
      });
    });

    it("when the status goes past_due, then active, then canceled, then the matching invoice and subscription events are emitted", async () => {
      const { subscriptionId } = await subscribe(1);
      receiver.received.length = 0;

      const failed = await sim.setSubscriptionStatus(subscriptionId, "past_due");
      expect(eventTypes(failed)).toEqual([
        "invoice.payment_failed",
        "customer.subscription.updated",
      ]);
      expect(failed[1]?.data.previous_attributes).toMatchObject({ status: "active" });
      expect(failed[0]?.data.object).toMatchObject({
        object: "invoice",
        status: "open",
        attempted: true,
      });
      expect((await stripe.subscriptions.retrieve(subscriptionId)).status).toBe("past_due");

      const recovered = await sim.setSubscriptionStatus(subscriptionId, "active");
      expect(eventTypes(recovered)).toEqual(["invoice.paid", "customer.subscription.updated"]);
      expect(recovered[0]?.data.object).toMatchObject({
        id: failed[0]?.data.object.id,
        status: "paid",
      });

      const unpaid = await sim.setSubscriptionStatus(subscriptionId, "unpaid");
      expect(eventTypes(unpaid)).toEqual([
        "invoice.payment_failed",
        "customer.subscription.updated",
      ]);

      const ended = await sim.setSubscriptionStatus(subscriptionId, "canceled");
      expect(eventTypes(ended)).toEqual(["customer.subscription.deleted"]);
      expect(ended[0]?.data.object).toMatchObject({ status: "canceled" });

      expect(receiver.received).toHaveLength(7);
      await expect(sim.setSubscriptionStatus(subscriptionId, "active")).rejects.toThrow(/canceled/);
      await expect(sim.setSubscriptionStatus(subscriptionId, "bogus")).rejects.toThrow(/unknown/);
    });

    it("when expand is requested, then referenced objects are inlined", async () => {
      const { subscriptionId, customerId } = await subscribe(1);
      const sub = await stripe.subscriptions.retrieve(subscriptionId, {
        expand: ["customer", "latest_invoice"],
      });
      expect((sub.customer as Stripe.Customer).id).toBe(customerId);
      expect((sub.latest_invoice as Stripe.Invoice).object).toBe("invoice");
      const list = await stripe.subscriptions.list({
        customer: customerId,
        expand: ["data.latest_invoice"],
      });
      expect((list.data[0]?.latest_invoice as Stripe.Invoice).status).toBe("paid");
    });
  });

  describe("invoice preview", () => {
    it("when previewing with invoices.createPreview, then amount_due is unit amount × quantity and due at period end", async () => {
      const { customerId, subscriptionId } = await subscribe(3);
      const sub = await stripe.subscriptions.retrieve(subscriptionId);
      const preview = await stripe.invoices.createPreview({
        customer: customerId,
        subscription: subscriptionId,
      });
      expect(preview.id).toMatch(/^upcoming_in_/);
      expect(preview.amount_due).toBe(30_000);
      expect(preview.currency).toBe("usd");
      expect(preview.next_payment_attempt).toBe(sub.items.data[0]?.current_period_end);
      expect(preview.lines.data[0]?.quantity).toBe(3);

      const byCustomer = await stripe.invoices.createPreview({ customer: customerId });
      expect(byCustomer.amount_due).toBe(30_000);
    });

    it("when previewing a quantity change without prorations, then the next invoice reflects the new quantity", async () => {
      const { customerId, subscriptionId } = await subscribe(1);
      const sub = await stripe.subscriptions.retrieve(subscriptionId);
      const preview = await stripe.invoices.createPreview({
        customer: customerId,
        subscription: subscriptionId,
        subscription_details: {
          items: [{ id: sub.items.data[0]?.id ?? "", quantity: 4 }],
          proration_behavior: "none",
        },
      });
      expect(preview.amount_due).toBe(40_000);
      expect(sim.state().subscriptions[0]?.items.data[0]?.quantity).toBe(1);
    });

    it("when the customer has no subscription, then createPreview fails with invoice_upcoming_none", async () => {
      const customer = await stripe.customers.create({ email: "a@b.test" });
      await expect(stripe.invoices.createPreview({ customer: customer.id })).rejects.toMatchObject({
        statusCode: 400,
        code: "invoice_upcoming_none",
      });
    });
  });

  describe("billing portal", () => {
    it("when a portal session is created for a known customer, then it links to the hosted portal, which can cancel at period end", async () => {
      const { customerId, subscriptionId } = await subscribe(1);
      const portal = await stripe.billingPortal.sessions.create({
        customer: customerId,
        return_url: "http://localhost:5173/billing",
      });
      expect(portal.id).toMatch(/^bps_/);
      expect(portal).toMatchObject({
        object: "billing_portal.session",
        customer: customerId,
        return_url: "http://localhost:5173/billing",
        url: `${sim.url}/portal/${portal.id}`,
      });
      const html = await (await fetch(portal.url)).text();
      expect(html).toContain("Cancel subscription");
      expect(html).toContain('href="http://localhost:5173/billing"');

      const res = await fetch(
        `${sim.url}/portal/${portal.id}/subscriptions/${subscriptionId}/cancel`,
        {
          method: "POST",
          redirect: "manual",
        },
      );
      expect(res.status).toBe(303);
      const sub = await stripe.subscriptions.retrieve(subscriptionId);
      expect(sub.cancel_at_period_end).toBe(true);
      expect(sim.state().events.at(-1)?.type).toBe("customer.subscription.updated");
    });

    it("when the customer is unknown, then portal creation fails with 404 resource_missing", async () => {
      await expect(
        stripe.billingPortal.sessions.create({ customer: "cus_unknown" }),
      ).rejects.toMatchObject({
        type: "StripeInvalidRequestError",
        statusCode: 404,
        code: "resource_missing",
        param: "customer",
      });
    });
  });

  describe("idempotency", () => {
    it("when a POST is repeated with the same Idempotency-Key and body, then the stored response is replayed without a second effect", async () => {
      const first = await stripe.customers.create(
        { email: "owner@acme.test", metadata: { org: "org_acme" } },
        { idempotencyKey: "create-org_acme" },
      );
      const second = await stripe.customers.create(
        { email: "owner@acme.test", metadata: { org: "org_acme" } },
        { idempotencyKey: "create-org_acme" },
      );
      expect(second.id).toBe(first.id);
      expect(second.lastResponse.headers["idempotent-replayed"]).toBe("true");
      expect(sim.state().customers).toHaveLength(1);
      expect(eventTypes(sim.state().events)).toEqual(["customer.created"]);
    });

    it("when the same key is reused with different parameters, then the call fails with an idempotency error", async () => {
      await stripe.customers.create({ email: "a@acme.test" }, { idempotencyKey: "k-1" });
      await expect(
        stripe.customers.create({ email: "b@acme.test" }, { idempotencyKey: "k-1" }),
      ).rejects.toMatchObject({
        type: "StripeIdempotencyError",
        statusCode: 400,
        rawType: "idempotency_error",
      });
      expect(sim.state().customers).toHaveLength(1);
    });

    it("when requests are made, then the log records method, route template, idempotency key and decoded body", async () => {
      const customer = await stripe.customers.create({ email: "owner@acme.test" });
      await stripe.customers.retrieve(customer.id);
      await stripe.checkout.sessions.create(
        {
          mode: "subscription",
          customer: customer.id,
          line_items: [{ price: PRICE_ID, quantity: 2 }],
          metadata: { org: "org_acme" },
        },
        { idempotencyKey: "checkout-org_acme-1" },
      );
      const log = sim.requests();
      expect(log.map((r) => `${r.method} ${r.path}`)).toEqual([
        "POST /v1/customers",
        "GET /v1/customers/:id",
        "POST /v1/checkout/sessions",
      ]);
      expect(log[0]?.idempotencyKey).toMatch(/^stripe-node-retry-/);
      expect(log[1]?.idempotencyKey).toBeUndefined();
      expect(log[2]?.idempotencyKey).toBe("checkout-org_acme-1");
      expect(log[2]?.body).toMatchObject({
        mode: "subscription",
        line_items: [{ price: PRICE_ID, quantity: "2" }],
        metadata: { org: "org_acme" },
      });
    });
  });

  describe("fault injection", () => {
    it("when a 429 is injected, then the next call fails with a rate-limit error and the following one succeeds", async () => {
      sim.injectFault({ status: 429 });
      await expect(stripe.customers.create({ email: "a@b.test" })).rejects.toMatchObject({
        type: "StripeRateLimitError",
        statusCode: 429,
        code: "rate_limit",
      });
      await expect(stripe.customers.create({ email: "a@b.test" })).resolves.toMatchObject({
        object: "customer",
      });
      expect(sim.state().customers).toHaveLength(1);
    });

    it("when a 402 is injected for one path, then only that path declines the card", async () => {
      const { customerId, subscriptionId } = await subscribe(1);
      sim.injectFault({ status: 402, pathPrefix: "/v1/subscriptions", count: 2 });
      await stripe.customers.retrieve(customerId);
      const sub = await stripe.subscriptions.retrieve(subscriptionId).catch((e: unknown) => e);
      expect(sub).toMatchObject({
        type: "StripeCardError",
        statusCode: 402,
        code: "card_declined",
        decline_code: "generic_decline",
      });
      await expect(
        stripe.subscriptions.update(subscriptionId, { metadata: { x: "1" } }),
      ).rejects.toMatchObject({ type: "StripeCardError" });
      await expect(stripe.subscriptions.retrieve(subscriptionId)).resolves.toMatchObject({
        id: subscriptionId,
      });
    });

    it("when a 500 is injected and the SDK retries, then the retry reuses the idempotency key and creates one object", async () => {
      const retrying = client(sim, SECRET_KEY, 1);
      sim.injectFault({ status: 500 });
      const customer = await retrying.customers.create({ email: "a@b.test" });
      expect(customer.id).toMatch(/^cus_/);
      const posts = sim.requests().filter((r) => r.method === "POST");
      expect(posts.map((r) => r.status)).toEqual([500, 200]);
      expect(posts[0]?.idempotencyKey).toBe(posts[1]?.idempotencyKey);
      expect(sim.state().customers).toHaveLength(1);
    }, 10_000);
  });

  describe("routing", () => {
    it("when an endpoint is not simulated, then the SDK gets Stripe's unrecognized-URL error", async () => {
      await expect(stripe.products.list()).rejects.toMatchObject({
        statusCode: 404,
        message: expect.stringContaining("Unrecognized request URL (GET: /v1/products)") as string,
      });
    });
  });
});
