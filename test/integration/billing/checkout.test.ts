import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { definitions as authDefinitions } from "../../../functions/auth.js";
import { definitions as meDefinitions } from "../../../functions/me.js";
import { checkEntitlement } from "../../../lib/billing/entitlement.js";
import { recordTrialStart } from "../../../lib/instances/project-refs.js";
import { startFunctionHost, type FunctionHost } from "../../../local/function-host.js";
import { LOCAL } from "../../../local/defaults.js";
import { TestClient } from "../../helpers/client.js";
import { randomRef, randomSlug } from "../../helpers/platform.js";
import {
  addInstance,
  checkoutOf,
  connectOrg,
  definitions,
  errorOf,
  installation,
  startBillingEnv,
  startForwarder,
  subscribe,
  summaryOf,
  urlOf,
  type BillingEnv,
} from "./helpers.js";

describe("billing: checkout, portal and overview", () => {
  let env: BillingEnv;
  beforeAll(async () => {
    env = await startBillingEnv();
  });
  afterAll(async () => {
    await env.close();
  });

  it("when a verified user starts a checkout, then it is a subscription session for the org's one customer with URLs under PUBLIC_BASE_URL", async () => {
    const a = await connectOrg(env);
    const res = await a.client.post("/api/billing/checkout");
    expect(res.status, res.text).toBe(200);
    expect(urlOf(res)).toMatch(/^http/);

    const state = env.stripe.state();
    const session = state.checkoutSessions.find((s) => s.id === checkoutOf(res).sessionId);
    expect(session).toBeDefined();
    expect(session!.mode).toBe("subscription");
    expect(session!.client_reference_id).toBe(a.org);
    expect(session!.metadata).toEqual({ org: a.org });
    const base = env.services.config.PUBLIC_BASE_URL;
    expect(session!.success_url!.startsWith(`${base}/`)).toBe(true);
    expect(session!.cancel_url!.startsWith(`${base}/`)).toBe(true);
    const customer = state.customers.find((c) => c.id === session!.customer);
    expect(customer?.metadata).toEqual({ org: a.org });
    expect((await installation(env.services, a.org)).stripeCustomerId).toBe(customer!.id);

    const created = env.stripe
      .requests()
      .filter((r) => r.method === "POST" && r.path === "/v1/checkout/sessions");
    const mine = created.filter((r) => r.body.client_reference_id === a.org);
    expect(mine.at(-1)?.idempotencyKey).toBeTruthy();
    expect(mine.at(-1)?.body.line_items).toEqual([
      { price: env.services.config.STRIPE_PRICE_ID, quantity: "1" },
    ]);
  });

  it("when the org connected through Supabase and the member verified, then the customer gets that member's e-mail", async () => {
    const supabase = env.platform.supabase!;
    const slug = randomSlug("conn");
    const member = {
      user_id: "3f8e7a62-1111-4a1f-8b5c-000000000001",
      user_name: "ada",
      email: `ada+${slug}@members.example`,
      role_name: "Owner",
      mfa_enabled: false,
    };
    supabase.addOrg({ slug, name: `Org ${slug}`, members: [member], projects: [] });
    const client = new TestClient(
      [...authDefinitions, ...meDefinitions, ...definitions],
      env.services,
    );
    const login = await client.get("/api/auth/login?returnTo=%2Fbilling");
    expect(login.status).toBe(302);
    const callback = new URL(
      supabase.authorize(new URL(login.headers.get("location")!).searchParams, slug),
    );
    expect((await client.get(`${callback.pathname}${callback.search}`)).status).toBe(302);
    expect(
      (await client.post("/api/me/verification", { body: { userId: member.user_id } })).status,
    ).toBe(200);
    const code = env.platform.loops!.to(member.email).at(-1)?.dataVariables.verificationCode;
    const confirmed = await client.post("/api/me/verification/confirm", {
      body: { userId: member.user_id, code },
    });
    expect(confirmed.status, confirmed.text).toBe(200);

    const res = await client.post("/api/billing/checkout");
    expect(res.status, res.text).toBe(200);
    const session = env.stripe
      .state()
      .checkoutSessions.find((s) => s.id === checkoutOf(res).sessionId)!;
    const customer = env.stripe.state().customers.find((c) => c.id === session.customer)!;
    expect(customer.email).toBe(member.email);
    expect(customer.name).toBe(`Org ${slug}`);
  });

  it("when checkout is started twice, then the customer is created once and reused", async () => {
    const a = await connectOrg(env);
    const first = await a.client.post("/api/billing/checkout");
    const second = await a.client.post("/api/billing/checkout");
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    // Same user, same quantity, same window: the idempotency key returns the same session.
    expect(checkoutOf(second).sessionId).toBe(checkoutOf(first).sessionId);
    const customers = env.stripe.state().customers.filter((c) => c.metadata.org === a.org);
    expect(customers).toHaveLength(1);
  });

  it("when the session is not verified, or absent, or the Origin is foreign, then checkout is refused before Stripe", async () => {
    const unverified = await connectOrg(env, { verified: false });
    const before = env.stripe.requests().length;
    expect((await unverified.client.post("/api/billing/checkout")).status).toBe(403);
    const anon = await connectOrg(env);
    anon.client.cookies.clear();
    expect((await anon.client.post("/api/billing/checkout")).status).toBe(401);
    const a = await connectOrg(env);
    const csrf = await a.client.post("/api/billing/checkout", { noOrigin: true });
    expect(csrf.status).toBe(403);
    expect(errorOf(csrf).code).toBe("csrf_origin_mismatch");
    const extra = await a.client.post("/api/billing/checkout", {
      body: { priceId: "price_cheap" },
    });
    expect(extra.status).toBe(400);
    expect(env.stripe.requests().length).toBe(before);
  });

  it("when checkout completes and its webhooks arrive, then a project whose trial is used may run as paid", async () => {
    const a = await connectOrg(env);
    const ref = randomRef();
    const trial = await checkEntitlement(env.services, a.org, ref);
    expect(trial.plan).toBe("trial");
    await recordTrialStart(
      env.services,
      a.org,
      ref,
      new Date(env.clock.now().getTime() + 3600_000),
    );
    env.clock.advance(2 * 3600_000);
    await expect(checkEntitlement(env.services, a.org, ref)).rejects.toMatchObject({
      status: 402,
      code: "trial_used",
    });

    const { subscriptionId } = await subscribe(env, a);
    const row = await installation(env.services, a.org);
    expect(row.stripeSubscriptionId).toBe(subscriptionId);
    expect(row.subscriptionStatus).toBe("active");
    expect(row.subscriptionQuantity).toBe(1);
    await expect(checkEntitlement(env.services, a.org, ref)).resolves.toEqual({
      allowed: true,
      plan: "paid",
    });

    // A second checkout for a subscribed org is refused: the portal manages it.
    const again = await a.client.post("/api/billing/checkout");
    expect(again.status).toBe(409);
    expect(errorOf(again).code).toBe("already_subscribed");
  });

  it("when the payer completed a checkout whose webhooks have not arrived, then a new checkout is refused and the subscription recorded", async () => {
    const a = await connectOrg(env);
    const first = await a.client.post("/api/billing/checkout");
    await env.stripe.completeCheckout(checkoutOf(first).sessionId);
    // Same window: the idempotency key replays the completed session.
    const replay = await a.client.post("/api/billing/checkout");
    expect(replay.status).toBe(409);
    expect(errorOf(replay).code).toBe("already_subscribed");
    expect((await installation(env.services, a.org)).subscriptionStatus).toBe("active");
    // Later (a new window), the subscription found in Stripe blocks a second one too.
    env.clock.advance(11 * 60_000);
    expect((await a.client.post("/api/billing/checkout")).status).toBe(409);
    const subs = env.stripe.state().subscriptions.filter((s) => s.metadata.org === a.org);
    expect(subs).toHaveLength(1);
  });

  it("when the simulator delivers the webhooks itself over HTTP, then the org ends up subscribed", async () => {
    const forwarder = await startForwarder();
    const own = await startBillingEnv({ webhookUrl: `${forwarder.url}/api/webhooks/stripe` });
    let host: FunctionHost | undefined;
    try {
      host = await startFunctionHost(definitions, own.services, {
        port: 0,
        adminKey: LOCAL.adminKey,
        functionKey: LOCAL.functionKey,
        runQueues: false,
        runTimers: false,
      });
      forwarder.setTarget(host.url);
      const a = await connectOrg(own);
      const res = await a.client.post("/api/billing/checkout");
      await own.stripe.completeCheckout(checkoutOf(res).sessionId);
      const delivered = own.stripe.deliveries;
      expect(delivered.length).toBeGreaterThanOrEqual(3);
      expect(delivered.every((d) => d.status === 200)).toBe(true);
      expect((await installation(own.services, a.org)).subscriptionStatus).toBe("active");
    } finally {
      await host?.close();
      await own.close();
      await forwarder.close();
    }
  });

  it("when a verified user opens the portal, then it is for their own org's customer only", async () => {
    const a = await connectOrg(env);
    const b = await connectOrg(env);
    const { customerId } = await subscribe(env, a);

    const mine = await a.client.post("/api/billing/portal");
    expect(mine.status, mine.text).toBe(200);
    const portals = () => env.stripe.state().portalSessions;
    expect(portals().find((p) => p.url === urlOf(mine))?.customer).toBe(customerId);
    expect(portals().find((p) => p.url === urlOf(mine))?.return_url).toBe(
      `${env.services.config.PUBLIC_BASE_URL}/billing`,
    );

    const countForA = portals().filter((p) => p.customer === customerId).length;
    const other = await b.client.post("/api/billing/portal");
    expect(other.status).toBe(404);
    expect(errorOf(other).code).toBe("no_billing_account");
    const smuggled = await b.client.post("/api/billing/portal", { body: { customer: customerId } });
    expect(smuggled.status).toBe(400);
    expect(portals().filter((p) => p.customer === customerId)).toHaveLength(countForA);

    const unverified = await connectOrg(env, { verified: false });
    expect((await unverified.client.post("/api/billing/portal")).status).toBe(403);
  });

  it("when the org has instances and a subscription, then GET /billing shows counts, the subscription and the next invoice", async () => {
    const a = await connectOrg(env);
    const empty = await a.client.get("/api/billing");
    expect(empty.status).toBe(200);
    expect(empty.body).toEqual({
      plan: "none",
      subscription: null,
      instances: { paid: 0, trial: 0, free: 0 },
      freeInstances: 0,
      nextInvoice: null,
      graceEndsAt: null,
    });

    await subscribe(env, a);
    await addInstance(env.services, a.org, "paid");
    await addInstance(env.services, a.org, "paid", "Deleted");
    await addInstance(env.services, a.org, "trial", "Deploying");
    const res = await a.client.get("/api/billing");
    expect(res.status).toBe(200);
    expect(summaryOf(res).plan).toBe("subscribed");
    expect(summaryOf(res).subscription).toMatchObject({ status: "active", quantity: 1 });
    expect(Date.parse(summaryOf(res).subscription!.currentPeriodEnd!)).toBeGreaterThan(Date.now());
    expect(summaryOf(res).instances).toEqual({ paid: 1, trial: 1, free: 0 });
    expect(summaryOf(res).nextInvoice).toMatchObject({ amountDue: 10_000, currency: "usd" });
    expect(Date.parse(summaryOf(res).nextInvoice!.date)).toBeGreaterThan(Date.now());
    expect(summaryOf(res).graceEndsAt).toBeNull();

    const anon = await connectOrg(env);
    anon.client.cookies.clear();
    expect((await anon.client.get("/api/billing")).status).toBe(401);
  });

  it("when Stripe fails while starting a checkout, then the answer is a 502 without internals", async () => {
    const a = await connectOrg(env);
    env.stripe.injectFault({ status: 500, count: 3, pathPrefix: "/v1/customers" });
    const res = await a.client.post("/api/billing/checkout");
    expect(res.status).toBe(502);
    expect(errorOf(res).code).toBe("upstream_error");
    expect(res.text).not.toMatch(/sk_test|stack|at .*\.ts/);
    // Once Stripe is back, the same org gets its one customer.
    const retry = await a.client.post("/api/billing/checkout");
    expect(retry.status).toBe(200);
  });
});
