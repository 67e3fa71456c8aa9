import { describe, expect, it } from "vitest";

import {
  countLive,
  graceEndsAt,
  lapseReason,
  subscriptionPays,
} from "../../../lib/billing/rules.js";
import { stripeOptions } from "../../../lib/billing/stripe.js";

const NOW = new Date("2026-03-01T12:00:00Z");
const H = 3600_000;

describe("billing rules", () => {
  it("when past_due, then the grace ends BILLING_GRACE_HOURS after the first failure", () => {
    const failed = new Date(NOW.getTime() - 10 * H);
    expect(graceEndsAt({ subscriptionStatus: "past_due", paymentFailedAt: failed }, 72)).toEqual(
      new Date(failed.getTime() + 72 * H),
    );
    expect(
      graceEndsAt({ subscriptionStatus: "active", paymentFailedAt: failed }, 72),
    ).toBeUndefined();
  });

  it("when the status is canceled or unpaid, then the org lapses at once; past_due only after the grace", () => {
    expect(lapseReason({ subscriptionStatus: "canceled" }, NOW, 72)).toBe("canceled");
    expect(lapseReason({ subscriptionStatus: "unpaid" }, NOW, 72)).toBe("unpaid");
    expect(lapseReason({ subscriptionStatus: "active" }, NOW, 72)).toBeUndefined();
    expect(lapseReason({}, NOW, 72)).toBeUndefined();
    const failed = (hoursAgo: number) => ({
      subscriptionStatus: "past_due",
      paymentFailedAt: new Date(NOW.getTime() - hoursAgo * H),
    });
    expect(lapseReason(failed(71), NOW, 72)).toBeUndefined();
    expect(lapseReason(failed(72), NOW, 72)).toBe("grace_expired");
    expect(subscriptionPays(failed(71), NOW, 72)).toBe(true);
    expect(subscriptionPays(failed(73), NOW, 72)).toBe(false);
  });

  it("when instances are counted, then only live ones count, by plan", () => {
    expect(
      countLive([
        { ref: "a", plan: "paid", state: "Running" },
        { ref: "b", plan: "paid", state: "Requested" },
        { ref: "c", plan: "paid", state: "Deleting" },
        { ref: "d", plan: "paid", state: "Deleted" },
        { ref: "e", plan: "trial", state: "Failed" },
        { ref: "f", plan: "trial", state: "Verifying" },
        { ref: "g", plan: "free", state: "Configuring" },
      ]),
    ).toEqual({ paid: 2, trial: 1, free: 1 });
  });

  it("when STRIPE_API_URL is set, then the client targets its host, port and protocol with 2 retries and no telemetry", () => {
    expect(stripeOptions("http://127.0.0.1:4567")).toMatchObject({
      host: "127.0.0.1",
      port: 4567,
      protocol: "http",
      maxNetworkRetries: 2,
      telemetry: false,
    });
    expect(stripeOptions("https://stripe.internal.example")).toMatchObject({
      host: "stripe.internal.example",
      port: 443,
      protocol: "https",
    });
    const real = stripeOptions(undefined);
    expect(real).not.toHaveProperty("host");
    expect(real).toMatchObject({ maxNetworkRetries: 2, telemetry: false });
  });
});
