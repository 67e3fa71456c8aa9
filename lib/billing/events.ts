/**
 * The `stripeEvents` table (PK = event id), one row per Stripe event: created as "processing"
 * with a short lease, marked "done" only after every effect. A delivery claims the row; one whose
 * lease is live is busy; one that failed or whose lease ran out (the process died) is taken over
 * with an etag.
 */
import type Stripe from "stripe";

import type { Services } from "../services.js";
import { getEntity, isConflict, lostRace, retryOnConflict } from "../storage/tables.js";

/** How long a delivery may hold an event before a redelivery may take it over. */
const EVENT_LEASE_MS = 60_000;

export type WebhookStatus = "processed" | "duplicate" | "ignored";

interface EventRow {
  status: "processing" | "done" | "failed";
  type: string;
  leaseUntil: Date;
  attempts: number;
}

type Claim = { kind: "claimed"; etag: string } | { kind: "done" } | { kind: "busy" };

const table = (services: Services) => services.tables.client("stripeEvents");

export function claimEvent(services: Services, event: Stripe.Event): Promise<Claim> {
  return retryOnConflict<Claim>(
    async () => {
      const now = services.clock.now();
      const leaseUntil = new Date(now.getTime() + EVENT_LEASE_MS);
      // Most events are new: try to create the row first (one round trip).
      try {
        const res = await table(services).createEntity({
          partitionKey: event.id,
          rowKey: "",
          type: event.type,
          status: "processing",
          leaseUntil,
          attempts: 1,
          receivedAt: now,
        });
        return { kind: "claimed", etag: res.etag ?? "*" };
      } catch (err) {
        if (!isConflict(err)) throw err;
      }
      const existing = await getEntity<EventRow>(table(services), event.id, "");
      if (!existing) throw lostRace();
      if (existing.status === "done") return { kind: "done" };
      const leased =
        existing.leaseUntil instanceof Date && existing.leaseUntil.getTime() > now.getTime();
      if (existing.status === "processing" && leased) return { kind: "busy" };
      const res = await table(services).updateEntity(
        {
          partitionKey: event.id,
          rowKey: "",
          status: "processing",
          leaseUntil,
          attempts: (existing.attempts || 0) + 1,
        },
        "Merge",
        { etag: existing.etag },
      );
      return { kind: "claimed", etag: res.etag ?? "*" };
    },
    { exhausted: () => ({ kind: "busy" }) },
  );
}

export async function finishEvent(
  services: Services,
  eventId: string,
  outcome: WebhookStatus,
): Promise<void> {
  await table(services).updateEntity(
    {
      partitionKey: eventId,
      rowKey: "",
      status: "done",
      outcome,
      processedAt: services.clock.now(),
    },
    "Merge",
  );
}

/** Gives the event back (its processing failed): the next delivery takes it over at once. */
export async function releaseEvent(
  services: Services,
  eventId: string,
  etag: string,
): Promise<void> {
  await table(services)
    .updateEntity(
      { partitionKey: eventId, rowKey: "", status: "failed", leaseUntil: services.clock.now() },
      "Merge",
      { etag },
    )
    .catch(() => undefined);
}
