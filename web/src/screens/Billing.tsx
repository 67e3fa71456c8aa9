/**
 * The org's plan, subscription, instances by plan and next invoice; Stripe Checkout and the
 * customer portal; and the result of coming back from Checkout (which Stripe confirms to the
 * backend by webhook, so the page asks again, with back-off, until it shows).
 */
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";

import type { Billing, Me } from "../api/client";
import { ErrorMessage } from "../components/ErrorMessage";
import { getBilling, keys, openPortal, startCheckout } from "../data";
import { dateLabel, money } from "../format";
import { backoffInterval } from "../poll";
import { Link, useLocation } from "../router";

/** After a successful checkout, ask until the subscription shows (at most ~2 minutes). */
const MAX_CONFIRM_POLLS = 20;
const untilSubscribed = backoffInterval<Billing>((b) =>
  b?.plan === "subscribed" ? undefined : "waiting",
);

export function BillingScreen({ me }: { me: Me }) {
  const { search } = useLocation();
  const checkout = search.get("checkout");
  const waitForSubscription = checkout === "success";
  const billing = useQuery({
    queryKey: keys.billing,
    queryFn: getBilling,
    staleTime: waitForSubscription ? 0 : 30_000,
    refetchInterval: waitForSubscription
      ? (q) => (q.state.dataUpdateCount > MAX_CONFIRM_POLLS ? false : untilSubscribed(q))
      : false,
  });

  const [busy, setBusy] = useState<"checkout" | "portal">();
  const [error, setError] = useState<unknown>();
  const go = async (what: "checkout" | "portal") => {
    setBusy(what);
    setError(undefined);
    try {
      const { url } = what === "checkout" ? await startCheckout() : await openPortal();
      window.location.assign(url);
    } catch (err) {
      setError(err);
      setBusy(undefined);
    }
  };

  const b = billing.data;
  return (
    <section aria-labelledby="billing-title">
      <h1 id="billing-title" tabIndex={-1}>
        Billing
      </h1>
      {checkout === "success" && (
        <p className={b?.plan === "subscribed" ? "success" : "notice"} role="status">
          {b?.plan === "subscribed"
            ? "Payment received: your subscription is active. Thank you!"
            : "Checkout is complete. Waiting for Stripe to confirm the subscription…"}
        </p>
      )}
      {checkout === "canceled" && (
        <p className="notice" role="status">
          Checkout was canceled. Nothing was charged.
        </p>
      )}
      {billing.isPending && <p role="status">Loading billing…</p>}
      <ErrorMessage error={billing.error} />
      {b && <Summary billing={b} />}
      {!me.user && (
        <p className="notice">
          To subscribe or manage billing, first <Link to="/identify">identify yourself</Link>.
        </p>
      )}
      <div className="actions">
        {b && b.plan !== "subscribed" && (
          <button
            type="button"
            className="primary"
            disabled={!me.user || busy !== undefined}
            onClick={() => void go("checkout")}
          >
            {busy === "checkout" ? "Opening Stripe Checkout…" : "Subscribe with Stripe Checkout"}
          </button>
        )}
        {b?.subscription && (
          <button
            type="button"
            disabled={!me.user || busy !== undefined}
            onClick={() => void go("portal")}
          >
            {busy === "portal" ? "Opening the customer portal…" : "Open the Stripe customer portal"}
          </button>
        )}
      </div>
      <ErrorMessage error={error} />
    </section>
  );
}

function Summary({ billing: b }: { billing: Billing }) {
  const s = b.subscription;
  return (
    <dl className="summary card">
      <dt>Plan</dt>
      <dd>
        {b.plan === "subscribed" ? (
          <strong>Subscribed</strong>
        ) : (
          "No subscription: each project can run one free trial"
        )}
      </dd>
      <dt>Subscription</dt>
      <dd>
        {s
          ? `${s.status.replace(/_/g, " ")}, ${s.quantity} ${s.quantity === 1 ? "project" : "projects"}${s.currentPeriodEnd ? `, renews ${dateLabel(s.currentPeriodEnd)}` : ""}`
          : "None"}
      </dd>
      <dt>Grafana instances</dt>
      <dd>
        {b.instances.paid} paid · {b.instances.trial} on trial
        {b.instances.free || b.freeInstances
          ? ` · ${b.instances.free} free of ${b.freeInstances} granted`
          : ""}
      </dd>
      <dt>Next invoice</dt>
      <dd>
        {b.nextInvoice
          ? `${money(b.nextInvoice.amountDue, b.nextInvoice.currency)} on ${dateLabel(b.nextInvoice.date)}`
          : "None scheduled"}
      </dd>
      {b.graceEndsAt && (
        <>
          <dt>Payment problem</dt>
          <dd className="error">
            A payment failed. Paid instances keep running until {dateLabel(b.graceEndsAt)}; update
            the payment method in the customer portal.
          </dd>
        </>
      )}
    </dl>
  );
}
