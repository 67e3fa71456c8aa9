import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { syncSubscriptionQuantity } from "../../../lib/billing/subscription.js";
import type { Plan } from "../../../lib/instances/model.js";
import {
  addInstance,
  connectOrg,
  installation,
  setInstanceState,
  startBillingEnv,
  subscribe,
  type BillingEnv,
} from "./helpers.js";

type Op =
  | { kind: "provision"; plan: Plan }
  | { kind: "ready"; pick: number }
  | { kind: "deprovision"; pick: number }
  | { kind: "fail"; pick: number }
  | { kind: "reprovision"; pick: number }
  | { kind: "concurrentSync" };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("provision" as const),
      plan: fc.constantFrom<Plan>("paid", "paid", "trial", "free"),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("ready" as const), pick: fc.nat() }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant("deprovision" as const), pick: fc.nat() }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("fail" as const), pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("reprovision" as const), pick: fc.nat() }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: "concurrentSync" as const }) },
);

describe("subscription quantity", () => {
  let env: BillingEnv;
  beforeAll(async () => {
    env = await startBillingEnv();
  });
  afterAll(async () => {
    await env.close();
  });

  const stripeQuantity = (subscriptionId: string) =>
    env.stripe.state().subscriptions.find((s) => s.id === subscriptionId)!.items.data[0]!.quantity;

  it("when paid instances come and go in any sequence, then the quantity always equals the live paid instances", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 8 }), async (ops) => {
        const a = await connectOrg(env);
        const { subscriptionId } = await subscribe(env, a);
        const rows: Array<{ ref: string; plan: Plan; live: boolean }> = [];
        const pick = (n: number, live: boolean) => {
          const candidates = rows.filter((r) => r.live === live);
          return candidates.length ? candidates[n % candidates.length] : undefined;
        };
        for (const op of ops) {
          switch (op.kind) {
            case "provision":
              rows.push({
                ref: await addInstance(env.services, a.org, op.plan, "Requested"),
                plan: op.plan,
                live: true,
              });
              break;
            case "ready": {
              const r = pick(op.pick, true);
              if (r) await setInstanceState(env.services, a.org, r.ref, "Running");
              break;
            }
            case "deprovision": {
              const r = pick(op.pick, true);
              if (r) {
                await setInstanceState(env.services, a.org, r.ref, "Deleting");
                r.live = false;
                await syncSubscriptionQuantity(env.services, a.org);
                await setInstanceState(env.services, a.org, r.ref, "Deleted");
              }
              break;
            }
            case "fail": {
              const r = pick(op.pick, true);
              if (r) {
                await setInstanceState(env.services, a.org, r.ref, "Failed");
                r.live = false;
              }
              break;
            }
            case "reprovision": {
              const r = pick(op.pick, false);
              if (r) {
                await setInstanceState(env.services, a.org, r.ref, "Requested");
                r.live = true;
              }
              break;
            }
            case "concurrentSync":
              await Promise.all([
                syncSubscriptionQuantity(env.services, a.org),
                syncSubscriptionQuantity(env.services, a.org),
              ]);
              break;
          }
          const result = await syncSubscriptionQuantity(env.services, a.org);
          const expected = rows.filter((r) => r.live && r.plan === "paid").length;
          expect(result.quantity).toBe(expected);
          expect(stripeQuantity(subscriptionId)).toBe(expected);
          expect((await installation(env.services, a.org)).subscriptionQuantity).toBe(expected);
        }
      }),
      { numRuns: 15 },
    );
    // Fifteen sequences of real table and Stripe round trips: the work, not a wait, sets the
    // time, and a busy machine stretches it; the bound only ends a stuck run.
  }, 180_000);

  it("when the quantity changes, then every write carries an idempotency key, prorates, and repeats of a value are written again", async () => {
    const a = await connectOrg(env);
    const { subscriptionId } = await subscribe(env, a);
    const updates = () =>
      env.stripe
        .requests()
        .filter((r) => r.method === "POST" && r.rawPath === `/v1/subscriptions/${subscriptionId}`);

    const first = await addInstance(env.services, a.org, "paid");
    expect((await syncSubscriptionQuantity(env.services, a.org)).changed).toBe(false); // 1 at checkout already
    const second = await addInstance(env.services, a.org, "paid");
    expect(await syncSubscriptionQuantity(env.services, a.org)).toEqual({
      quantity: 2,
      changed: true,
    });
    await setInstanceState(env.services, a.org, second, "Deleted");
    await syncSubscriptionQuantity(env.services, a.org);
    await setInstanceState(env.services, a.org, second, "Running");
    await syncSubscriptionQuantity(env.services, a.org);
    expect(stripeQuantity(subscriptionId)).toBe(2);

    const writes = updates();
    expect(writes.map((w) => (w.body.items as Array<{ quantity: string }>)[0]!.quantity)).toEqual([
      "2",
      "1",
      "2",
    ]);
    expect(writes.every((w) => w.body.proration_behavior === "create_prorations")).toBe(true);
    const keys = writes.map((w) => w.idempotencyKey);
    expect(keys.every((k) => k?.includes(a.org) && k.includes(subscriptionId))).toBe(true);
    expect(new Set(keys).size).toBe(3);

    // Nothing changed: nothing is written.
    await syncSubscriptionQuantity(env.services, a.org);
    expect(updates()).toHaveLength(3);

    // The last paid instance goes: the subscription stays, at quantity 0.
    await setInstanceState(env.services, a.org, first, "Deleted");
    await setInstanceState(env.services, a.org, second, "Failed");
    expect(await syncSubscriptionQuantity(env.services, a.org)).toEqual({
      quantity: 0,
      changed: true,
    });
    expect(stripeQuantity(subscriptionId)).toBe(0);
    expect(env.stripe.state().subscriptions.find((s) => s.id === subscriptionId)!.status).toBe(
      "active",
    );
  });

  it("when the org has no subscription, then syncing writes nothing to Stripe", async () => {
    const a = await connectOrg(env);
    await addInstance(env.services, a.org, "paid");
    const before = env.stripe.requests().length;
    expect(await syncSubscriptionQuantity(env.services, a.org)).toEqual({
      quantity: 1,
      changed: false,
      skipped: "no_subscription",
    });
    expect(env.stripe.requests().length).toBe(before);
  });
});
