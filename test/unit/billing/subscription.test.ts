import fc from "fast-check";
import { describe, expect, it } from "vitest";

import type { BillingAccount } from "../../../lib/billing/account.js";
import {
  billingPatchFor,
  prefersIncoming,
  type SubscriptionSnapshot,
} from "../../../lib/billing/subscription.js";

const NOW = new Date("2026-03-01T12:00:00Z");

const account = (over: Partial<BillingAccount> = {}): BillingAccount => ({
  org: "acme",
  etag: "e",
  ...over,
});
const snap = (over: Partial<SubscriptionSnapshot> = {}): SubscriptionSnapshot => ({
  id: "sub_1",
  status: "active",
  customerId: "cus_1",
  created: 1000,
  itemId: "si_1",
  quantity: 2,
  cancelAtPeriodEnd: false,
  currentPeriodEnd: new Date("2026-04-01T00:00:00Z"),
  ...over,
});

describe("subscription state", () => {
  it("when a subscription is read, then the installation mirrors its id, status, quantity and period end", () => {
    expect(billingPatchFor(account(), snap(), NOW)).toEqual({
      stripeCustomerId: "cus_1",
      stripeSubscriptionId: "sub_1",
      subscriptionStatus: "active",
      subscriptionQuantity: 2,
      currentPeriodEnd: new Date("2026-04-01T00:00:00Z"),
    });
  });

  it("when it goes past_due, then paymentFailedAt is the open invoice's first failure, whatever the event order", () => {
    const since = new Date("2026-02-27T08:00:00Z");
    const stale = new Date("2026-01-01T00:00:00Z");
    // A failure timestamp left over from an earlier delinquency is replaced by Stripe's.
    const patch = billingPatchFor(
      account({ paymentFailedAt: stale }),
      snap({ status: "past_due", delinquentSince: since }),
      NOW,
    );
    expect(patch.paymentFailedAt).toEqual(since);
    // Without an open invoice, the first one seen stays.
    expect(
      billingPatchFor(account({ paymentFailedAt: stale }), snap({ status: "past_due" }), NOW)
        .paymentFailedAt,
    ).toEqual(stale);
    expect(billingPatchFor(account(), snap({ status: "past_due" }), NOW).paymentFailedAt).toEqual(
      NOW,
    );
  });

  it("when it is paid again, then paymentFailedAt is cleared", () => {
    const patch = billingPatchFor(
      account({ paymentFailedAt: NOW }),
      snap({ status: "active" }),
      NOW,
    );
    expect(patch.paymentFailedAt).toBeNull();
  });

  it("when the org has two subscriptions, then the live one wins, else the newer, in any order", () => {
    const statuses = fc.constantFrom(
      "active",
      "past_due",
      "canceled",
      "incomplete_expired",
      "unpaid",
    );
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.record({
            id: fc.stringMatching(/^sub_[a-z]{4}$/),
            status: statuses,
            created: fc.integer({ min: 1, max: 50 }),
          }),
          {
            minLength: 1,
            maxLength: 5,
            selector: (s) => s.id,
          },
        ),
        (subs) => {
          const pick = (order: typeof subs) =>
            order.reduce((best, s) => (prefersIncoming(best, s) ? s : best));
          const forward = pick(subs);
          expect(pick([...subs].reverse())).toEqual(forward);
          const live = subs.filter(
            (s) => s.status !== "canceled" && s.status !== "incomplete_expired",
          );
          if (live.length > 0) expect(live).toContainEqual(forward);
        },
      ),
      { numRuns: 300 },
    );
  });
});
