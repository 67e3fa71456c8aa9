/**
 * Shared set-up for the billing integration tests: a platform with a movable clock, connected
 * orgs with (verified) sessions, instance rows, and signed webhook delivery through the handler.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

import { expect } from "vitest";

import { definitions as billingDefinitions } from "../../../functions/billing.js";
import { definitions as webhookDefinitions } from "../../../functions/stripe-webhook.js";
import { SESSION_COOKIE, bindUser, startSession } from "../../../lib/auth/session.js";
import type { BillingSummary } from "../../../lib/billing/summary.js";
import type { FunctionDefinition } from "../../../lib/functions.js";
import { createInstance, getInstance, saveInstance } from "../../../lib/instances/store.js";
import type { InstanceState } from "../../../lib/instances/lifecycle.js";
import type { Plan } from "../../../lib/instances/model.js";
import type { Clock, Services } from "../../../lib/services.js";
import type { Platform } from "../../../local/platform.js";
import type { StripeEvent, StripeSimulator } from "../../../local/simulators/stripe.js";
import { TestClient, type TestResponse } from "../../helpers/client.js";
import { randomRef, randomSlug, startTestPlatform } from "../../helpers/platform.js";

export const definitions: FunctionDefinition[] = [...billingDefinitions, ...webhookDefinitions];

/** Typed views of response bodies. */
export const errorOf = (res: TestResponse) =>
  (res.body as { error: { code: string; message: string } }).error;
export const hookStatus = (res: TestResponse) => (res.body as { status: string }).status;
export const checkoutOf = (res: TestResponse) => res.body as { url: string; sessionId: string };
export const urlOf = (res: TestResponse) => (res.body as { url: string }).url;
export const summaryOf = (res: TestResponse) => res.body as BillingSummary;

/** Real time plus an offset the test moves forward. */
export class TestClock implements Clock {
  offsetMs = 0;
  now = (): Date => new Date(Date.now() + this.offsetMs);
  advance(ms: number): void {
    this.offsetMs += ms;
  }
  seconds(): number {
    return Math.floor(this.now().getTime() / 1000);
  }
}

export interface BillingEnv {
  platform: Platform;
  services: Services;
  stripe: StripeSimulator;
  clock: TestClock;
  close(): Promise<void>;
}

/**
 * A platform whose Stripe simulator does not deliver on its own (tests deliver, in the order they
 * choose) unless `webhookUrl` is given.
 */
export async function startBillingEnv(
  opts: { webhookUrl?: string; env?: Record<string, string> } = {},
): Promise<BillingEnv> {
  const clock = new TestClock();
  const platform = await startTestPlatform({
    clock,
    // Port 9 refuses connections at once: the simulator's own deliveries go nowhere.
    stripeWebhookUrl: opts.webhookUrl ?? "http://127.0.0.1:9/api/webhooks/stripe",
    ...(opts.env ? { env: opts.env } : {}),
  });
  if (!platform.stripe) throw new Error("the Stripe simulator did not start");
  return {
    platform,
    services: platform.services,
    stripe: platform.stripe,
    clock,
    close: () => platform.close(),
  };
}

export interface OrgHandle {
  org: string;
  userId: string;
  client: TestClient;
}

/** An installed org with a client holding its session (verified unless told otherwise). */
export async function connectOrg(
  env: BillingEnv,
  opts: { verified?: boolean; name?: string } = {},
): Promise<OrgHandle> {
  const org = randomSlug("org");
  await env.services.tables.client("installations").createEntity({
    partitionKey: org,
    rowKey: "",
    name: opts.name ?? `Org ${org}`,
    status: "active",
    installedAt: env.clock.now(),
  });
  const client = new TestClient(definitions, env.services);
  const { session, cookie } = await startSession(env.services, org);
  const userId = `user-${org}`;
  if (opts.verified ?? true)
    await bindUser(env.services, session.id, { id: userId, name: "Ada", role: "Owner" });
  client.cookies.set(SESSION_COOKIE, cookie.value);
  return { org, userId, client };
}

/** Signs an event with the webhook secret at the test clock's time and posts it raw. */
export async function deliver(
  env: BillingEnv,
  client: TestClient,
  event: StripeEvent,
  opts: { timestamp?: number; secret?: string; tamper?: (payload: string) => string } = {},
): Promise<TestResponse> {
  const signed = env.stripe.signEvent(event, {
    timestamp: opts.timestamp ?? env.clock.seconds(),
    ...(opts.secret ? { secret: opts.secret } : {}),
  });
  const body = opts.tamper ? opts.tamper(signed.payload) : signed.payload;
  return client.post("/api/webhooks/stripe", {
    body,
    headers: {
      "stripe-signature": signed.signature,
      "content-type": "application/json; charset=utf-8",
    },
    noOrigin: true,
  });
}

export async function deliverAll(
  env: BillingEnv,
  client: TestClient,
  events: StripeEvent[],
): Promise<void> {
  for (const event of events) {
    const res = await deliver(env, client, event);
    expect(res.status, `${event.type}: ${res.text}`).toBe(200);
  }
}

/** Checkout through the API, paid on the simulator, webhooks delivered; returns the subscription id. */
export async function subscribe(
  env: BillingEnv,
  handle: OrgHandle,
): Promise<{ subscriptionId: string; customerId: string; events: StripeEvent[] }> {
  const res = await handle.client.post("/api/billing/checkout");
  expect(res.status, res.text).toBe(200);
  const { sessionId } = checkoutOf(res);
  const events = await env.stripe.completeCheckout(sessionId);
  await deliverAll(env, handle.client, events);
  const session = env.stripe.state().checkoutSessions.find((s) => s.id === sessionId);
  if (!session?.subscription || !session.customer)
    throw new Error("checkout did not create a subscription");
  return { subscriptionId: session.subscription, customerId: session.customer, events };
}

export async function addInstance(
  services: Services,
  org: string,
  plan: Plan,
  state: InstanceState = "Running",
  ref = randomRef(),
): Promise<string> {
  const now = new Date();
  await createInstance(services, {
    org,
    ref,
    state,
    operationId: `op-${ref}`,
    operation: "provision",
    step: state === "Running" ? "done" : state === "Failed" ? "failed" : "deploy",
    attempts: 0,
    operationStartedAt: now,
    plan,
    createdAt: now,
    updatedAt: now,
  });
  return ref;
}

/** Records that the project's trial is over (as for a project that was a trial before it was paid). */
export async function markTrialUsed(env: BillingEnv, org: string, ref: string): Promise<void> {
  const now = env.clock.now().getTime();
  await env.services.tables.client("projectRefs").upsertEntity(
    {
      partitionKey: ref,
      rowKey: "",
      org,
      trialStartedAt: new Date(now - 100 * 3600_000),
      trialEndsAt: new Date(now - 28 * 3600_000),
    },
    "Merge",
  );
}

export async function setInstanceState(
  services: Services,
  org: string,
  ref: string,
  state: InstanceState,
): Promise<void> {
  const current = await getInstance(services, org, ref);
  if (!current) throw new Error(`no instance ${ref}`);
  await saveInstance(services, { ...current, state, updatedAt: new Date() });
}

export async function installation(
  services: Services,
  org: string,
): Promise<Record<string, unknown>> {
  return services.tables.client("installations").getEntity(org, "");
}

/** An HTTP endpoint whose target is set later (the simulator needs its webhook URL up front). */
export async function startForwarder(): Promise<{
  url: string;
  setTarget(url: string): void;
  close(): Promise<void>;
}> {
  let target: string | undefined;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (!target) {
        res.writeHead(503).end();
        return;
      }
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers))
        if (typeof v === "string" && k !== "host") headers[k] = v;
      fetch(`${target}${req.url ?? "/"}`, {
        method: req.method ?? "POST",
        headers,
        body: Buffer.concat(chunks),
      })
        .then(async (r) => {
          res.writeHead(r.status, {
            "content-type": r.headers.get("content-type") ?? "text/plain",
          });
          res.end(Buffer.from(await r.arrayBuffer()));
        })
        .catch(() => res.writeHead(502).end());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    setTarget: (url) => {
      target = url;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
