/**
 * The billing fields of an org's installation row (`installations`, PK = org slug, RK = "").
 *
 * The row is shared with the connect work, which owns the org name, tokens and status. Billing
 * owns only the fields below and writes them through the table's module (`lib/installations.ts`)
 * with Merge (never Replace), etag-conditional when the write decides something. Table storage
 * cannot remove a property with Merge (a null is ignored), so a cleared date is written as the
 * epoch (`CLEARED`, as the connect work does for its own dates) and read back as undefined.
 */
import { odata } from "@azure/data-tables";

import {
  mergeInstallationFields,
  queryInstallationRows,
  readInstallationRow,
} from "../installations.js";
import type { Services } from "../services.js";

export interface BillingAccount {
  org: string;
  /** Org display name (owned by the connect work; read only here). */
  name?: string | undefined;
  stripeCustomerId?: string | undefined;
  stripeSubscriptionId?: string | undefined;
  subscriptionStatus?: string | undefined;
  subscriptionQuantity?: number | undefined;
  currentPeriodEnd?: Date | undefined;
  /** First payment failure of the current delinquency. */
  paymentFailedAt?: Date | undefined;
  /** Instances an operator granted for free. */
  freeInstances?: number | undefined;
  /** Bumped before every quantity write to Stripe; part of that write's idempotency key. */
  subscriptionSyncVersion?: number | undefined;
  billingUpdatedAt?: Date | undefined;
  etag: string;
}

/** The fields billing writes; `null` clears a date. */
export interface BillingPatch {
  stripeCustomerId?: string;
  stripeSubscriptionId?: string;
  subscriptionStatus?: string;
  subscriptionQuantity?: number;
  currentPeriodEnd?: Date | null;
  paymentFailedAt?: Date | null;
  freeInstances?: number;
  subscriptionSyncVersion?: number;
}

interface InstallationEntity {
  name?: unknown;
  stripeCustomerId?: unknown;
  stripeSubscriptionId?: unknown;
  subscriptionStatus?: unknown;
  subscriptionQuantity?: unknown;
  currentPeriodEnd?: unknown;
  paymentFailedAt?: unknown;
  freeInstances?: unknown;
  subscriptionSyncVersion?: unknown;
  billingUpdatedAt?: unknown;
}

const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);
const num = (v: unknown): number | undefined =>
  typeof v === "number" && Number.isFinite(v) ? v : undefined;
/** Written instead of removing a date. */
const CLEARED = new Date(0);

const date = (v: unknown): Date | undefined =>
  v instanceof Date && !Number.isNaN(v.getTime()) && v.getTime() > 0 ? v : undefined;

function fromEntity(org: string, e: InstallationEntity & { etag: string }): BillingAccount {
  return {
    org,
    name: str(e.name),
    stripeCustomerId: str(e.stripeCustomerId),
    stripeSubscriptionId: str(e.stripeSubscriptionId),
    subscriptionStatus: str(e.subscriptionStatus),
    subscriptionQuantity: num(e.subscriptionQuantity),
    currentPeriodEnd: date(e.currentPeriodEnd),
    paymentFailedAt: date(e.paymentFailedAt),
    freeInstances: num(e.freeInstances),
    subscriptionSyncVersion: num(e.subscriptionSyncVersion),
    billingUpdatedAt: date(e.billingUpdatedAt),
    etag: e.etag,
  };
}

/** The org's billing fields, or undefined when the org has no installation row. */
export async function readBilling(
  services: Services,
  org: string,
): Promise<BillingAccount | undefined> {
  const e = await readInstallationRow<InstallationEntity>(services, org);
  return e ? fromEntity(org, e) : undefined;
}

/**
 * Merges billing fields into the installation row; with `etag`, only if the row is unchanged
 * (412 otherwise, see `isConflict`). Fails with 404 when the row does not exist: billing never
 * creates an installation. Returns the new etag.
 */
export async function mergeBilling(
  services: Services,
  org: string,
  patch: BillingPatch,
  etag?: string,
): Promise<string> {
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) continue;
    fields[k] = v === null ? CLEARED : v;
  }
  return mergeInstallationFields(
    services,
    org,
    { ...fields, billingUpdatedAt: services.clock.now() },
    etag,
  );
}

/** Operator action: how many instances the org may run for free (0 removes the grant). */
export async function setFreeInstances(
  services: Services,
  org: string,
  count: number,
): Promise<void> {
  if (!Number.isInteger(count) || count < 0 || count > 1000) {
    throw new RangeError("freeInstances must be an integer between 0 and 1000");
  }
  await mergeBilling(services, org, { freeInstances: count });
}

/** The org whose installation holds this Stripe customer, if any. */
export async function findOrgByCustomer(
  services: Services,
  customerId: string,
): Promise<string | undefined> {
  const rows = queryInstallationRows(services, odata`stripeCustomerId eq ${customerId}`);
  for await (const e of rows) return e.partitionKey;
  return undefined;
}

/** Installations whose subscription is in one of these statuses (reconciler, lapse checks). */
export async function listBillingByStatus(
  services: Services,
  statuses: readonly string[],
): Promise<BillingAccount[]> {
  if (statuses.length === 0) return [];
  const filter = statuses.map((s) => odata`subscriptionStatus eq ${s}`).join(" or ");
  const out: BillingAccount[] = [];
  const rows = queryInstallationRows<InstallationEntity>(services, filter);
  for await (const e of rows) out.push(fromEntity(e.partitionKey, e));
  return out;
}
