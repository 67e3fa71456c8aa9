/**
 * Stripe webhook figures, over HTTP against the local function host (in-memory Azurite, the
 * Stripe and Loops simulators, no added latency): 1,000 signed deliveries, of which 20% are
 * duplicates, in a shuffled order at 16 concurrent, and the checks that nothing took effect
 * twice (each event processed once, one payment-failed mail per unpaid invoice, no Stripe writes,
 * every org's installation equal to Stripe's state).
 */
import { pathToFileURL } from "node:url";

import { readBilling } from "../../lib/billing/account.js";
import { createCheckout } from "../../lib/billing/checkout.js";
import { stripeFor } from "../../lib/billing/stripe.js";
import { startLocalApp } from "../../local/app-host.js";
import { LOCAL } from "../../local/defaults.js";
import { startPlatform } from "../../local/platform.js";
import type { StripeEvent } from "../../local/simulators/stripe.js";
import { fmt, percentile } from "./load.js";

const DEFAULT_DELIVERIES = 1000;
const DUPLICATE_SHARE = 0.2;
const DEFAULT_CONCURRENCY = 16;
const ORGS = 25;

/** A small seeded generator, so every run delivers the same order. */
function rng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

export async function benchWebhooks(
  opts: { concurrency?: number; deliveries?: number } = {},
): Promise<Record<string, string | number>> {
  const CONCURRENCY = opts.concurrency ?? DEFAULT_CONCURRENCY;
  const DELIVERIES = opts.deliveries ?? DEFAULT_DELIVERIES;
  const figures: Record<string, string | number> = {};
  // The simulator's own deliveries go nowhere (port 9 refuses): the bench delivers.
  const platform = await startPlatform({
    sandbox: true,
    stripeWebhookUrl: "http://127.0.0.1:9/api/webhooks/stripe",
  });
  const { services } = platform;
  const sim = platform.stripe;
  const loops = platform.loops;
  if (!sim || !loops) throw new Error("the Stripe and Loops simulators must run for this bench");
  const local = await startLocalApp(platform, {
    port: 0,
    adminKey: LOCAL.adminKey,
    functionKey: LOCAL.functionKey,
    runQueues: false,
    runTimers: false,
  });
  const host = local.host;
  try {
    // Orgs with a paid subscription and a customer e-mail, and a history of events.
    const stripe = await stripeFor(services);
    const uniqueTarget = Math.round(DELIVERIES * (1 - DUPLICATE_SHARE));
    const events: StripeEvent[] = [];
    const subs: Array<{ org: string; id: string }> = [];
    for (let i = 0; i < ORGS; i++) {
      const org = `bench-org-${i}`;
      await services.tables.client("installations").createEntity({
        partitionKey: org,
        rowKey: "",
        name: `Bench ${i}`,
        status: "active",
        installedAt: new Date(),
      });
      const { sessionId } = await createCheckout(services, org, "bench-user");
      events.push(...(await sim.completeCheckout(sessionId)));
      const sub = sim.state().subscriptions.find((s) => s.metadata.org === org);
      if (!sub) throw new Error("checkout did not create a subscription");
      await stripe.customers.update(sub.customer, { email: `billing@${org}.example` });
      subs.push({ org, id: sub.id });
    }
    // Failure, recovery and renewal cycles until there are enough events; half the orgs end
    // with an unpaid invoice (whose failure must be mailed exactly once).
    const cycle = ["past_due", "active", "renew"] as const;
    for (let step = 0; events.length < uniqueTarget; step++) {
      const sub = subs[step % subs.length]!;
      const action = cycle[Math.floor(step / subs.length) % cycle.length]!;
      events.push(
        ...(action === "renew"
          ? await sim.advancePeriod(sub.id)
          : await sim.setSubscriptionStatus(sub.id, action)),
      );
    }
    const unique = events.slice(0, uniqueTarget);
    // Subscriptions whose last event was emitted after the cut still change state in Stripe;
    // the checks below compare with Stripe's state as it is, which the handler re-reads.
    for (const [i, sub] of subs.entries()) {
      if (i % 2 === 0) await sim.setSubscriptionStatus(sub.id, "past_due");
      else await sim.setSubscriptionStatus(sub.id, "active");
    }
    const finalEvents = sim.state().events.filter((e) => e.type === "invoice.payment_failed");
    const lastFailure = new Map<string, StripeEvent>();
    for (const e of finalEvents) {
      const invoice = e.data.object as { subscription?: string };
      if (invoice.subscription) lastFailure.set(invoice.subscription, e);
    }
    // Make sure each unpaid invoice's failure is among the delivered events.
    for (const [i, sub] of subs.entries()) {
      const e = lastFailure.get(sub.id);
      if (i % 2 === 0 && e && !unique.some((u) => u.id === e.id)) unique[unique.length - 1 - i] = e;
    }

    const random = rng(20261121);
    const duplicates = Array.from(
      { length: DELIVERIES - unique.length },
      () => unique[Math.floor(random() * unique.length)]!,
    );
    const deliveries = [...unique, ...duplicates];
    for (let i = deliveries.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [deliveries[i], deliveries[j]] = [deliveries[j]!, deliveries[i]!];
    }

    const stripeWritesBefore = sim.requests().filter((r) => r.method !== "GET").length;
    const mailsBefore = loops.sent.length;
    const latencies: number[] = [];
    const perEvent: number[] = [];
    const outcomes = new Map<string, string[]>();
    let retries = 0;
    let failures = 0;
    let next = 0;
    const url = `${host.url}/api/webhooks/stripe`;
    const deliverOne = async (event: StripeEvent) => {
      const began = performance.now();
      for (let attempt = 0; attempt < 50; attempt++) {
        const { payload, signature } = sim.signEvent(event);
        const t0 = performance.now();
        const res = await fetch(url, {
          method: "POST",
          headers: {
            "content-type": "application/json; charset=utf-8",
            "stripe-signature": signature,
          },
          body: payload,
        });
        const text = await res.text();
        latencies.push(performance.now() - t0);
        if (res.status === 200) {
          const status = (JSON.parse(text) as { status: string }).status;
          outcomes.set(event.id, [...(outcomes.get(event.id) ?? []), status]);
          perEvent.push(performance.now() - began);
          return;
        }
        if (res.status !== 409) failures++;
        // Stripe delivers a failed event again later; here a little later.
        retries++;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error(`event ${event.id} was never accepted`);
    };
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < deliveries.length) {
          const event = deliveries[next++]!;
          await deliverOne(event);
        }
      }),
    );
    const elapsed = performance.now() - started;

    // No double effect.
    const processedTwice = [...outcomes.values()].filter(
      (o) => o.filter((s) => s !== "duplicate").length !== 1,
    ).length;
    const duplicateAnswers = [...outcomes.values()].reduce(
      (n, o) => n + o.filter((s) => s === "duplicate").length,
      0,
    );
    const stripeWrites =
      sim.requests().filter((r) => r.method !== "GET").length - stripeWritesBefore;
    const mails = loops.sent
      .slice(mailsBefore)
      .filter((m) => m.transactionalId === services.config.LOOPS_TX_PAYMENT_FAILED);
    const mailKeys = new Set(mails.map((m) => m.idempotencyKey));
    const openInvoices = new Set(
      sim
        .state()
        .invoices.filter((inv) => inv.status === "open")
        .map((inv) => inv.id),
    );
    const failedOpenDelivered = new Set(
      unique
        .filter((e) => e.type === "invoice.payment_failed")
        .map((e) => (e.data.object as { id: string }).id)
        .filter((id) => openInvoices.has(id)),
    );
    let mismatched = 0;
    for (const sub of subs) {
      const account = await readBilling(services, sub.org);
      const actual = sim.state().subscriptions.find((s) => s.id === sub.id)!;
      if (
        account?.subscriptionStatus !== actual.status ||
        account.subscriptionQuantity !== actual.items.data[0]!.quantity
      ) {
        mismatched++;
      }
    }
    const ok =
      processedTwice === 0 &&
      outcomes.size === unique.length &&
      duplicateAnswers === DELIVERIES - unique.length &&
      stripeWrites === 0 &&
      mails.length === failedOpenDelivered.size &&
      mailKeys.size === mails.length &&
      mismatched === 0 &&
      failures === 0;

    const sorted = [...latencies].sort((a, b) => a - b);
    const sortedEvents = [...perEvent].sort((a, b) => a - b);
    figures[
      `deliveries (${unique.length} events + ${DELIVERIES - unique.length} duplicates, shuffled, ${CONCURRENCY} concurrent)`
    ] = `${DELIVERIES} in ${(elapsed / 1000).toFixed(2)} s`;
    figures["throughput"] = `${((DELIVERIES / elapsed) * 1000).toFixed(0)} deliveries/s`;
    figures["latency per delivery: p50"] = fmt(percentile(sorted, 50));
    figures["latency per delivery: p99"] = fmt(percentile(sorted, 99));
    figures["latency per delivery: max"] = fmt(sorted.at(-1) ?? NaN);
    figures["per event until acknowledged (incl. 409 waits): p99"] = fmt(
      percentile(sortedEvents, 99),
    );
    figures["in-progress answers (409) redelivered"] = retries;
    figures["events processed more than once"] = processedTwice;
    figures["duplicates answered 'duplicate'"] =
      `${duplicateAnswers}/${DELIVERIES - unique.length}`;
    figures["payment-failed mails / unpaid invoices delivered"] =
      `${mails.length}/${failedOpenDelivered.size}`;
    figures["Stripe writes made by webhook handling"] = stripeWrites;
    figures["orgs whose installation differs from Stripe"] = `${mismatched}/${subs.length}`;
    figures["no double effect"] = ok ? "yes" : "NO";
    if (!ok) throw new Error(`webhook bench checks failed: ${JSON.stringify(figures)}`);
  } finally {
    await local.close();
    await platform.close();
  }
  return figures;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const figures = await benchWebhooks();
  const width = Math.max(...Object.keys(figures).map((k) => k.length));
  for (const [k, v] of Object.entries(figures)) console.log(`  ${k.padEnd(width)}  ${v}`);
}
