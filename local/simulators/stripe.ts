/**
 * Stripe simulator for the local dev host and the integration tests.
 *
 * Speaks enough of Stripe's v1 wire protocol (form-encoded requests, JSON responses,
 * Stripe-shaped errors, idempotency keys) for what the app's `stripe` SDK client calls, offline:
 * create/retrieve/update customers, create Checkout and billing portal sessions, list, retrieve
 * and update subscriptions, preview and retrieve invoices. Anything else answers Stripe's
 * unrecognized-URL error.
 * It also serves a hosted Checkout page and a minimal portal page for the dev host, and
 * signs and delivers webhook events to the app the way Stripe does.
 */
import { createHmac, randomBytes } from "node:crypto";
import Stripe from "stripe";
import { json, startSimServer, type SimRequest, type SimResponse } from "./server.js";
import {
  StripeApiError,
  arrayOfObjects,
  assertKnownParams,
  decodeForm,
  formFingerprint,
  invalidRequest,
  mergeMetadata,
  noSuch,
  optBool,
  optInt,
  optObject,
  optString,
  reqString,
  stringArray,
  type FormObject,
} from "./stripe-form.js";
import { ALLOWED_PARAMS as P } from "./stripe-params.js";
import type {
  Metadata,
  Price,
  Plan,
  Customer,
  SubscriptionStatus,
  SubscriptionItem,
  ApiList,
  Subscription,
  InvoiceLine,
  InvoiceStatus,
  Invoice,
  CheckoutSession,
  CheckoutLineItem,
  PortalSession,
  StripeObject,
  StripeEvent,
} from "./stripe-types.js";

export type {
  Metadata,
  Price,
  Plan,
  Customer,
  SubscriptionStatus,
  SubscriptionItem,
  ApiList,
  Subscription,
  InvoiceLine,
  InvoiceStatus,
  Invoice,
  CheckoutSession,
  CheckoutLineItem,
  PortalSession,
  StripeObject,
  StripeEvent,
} from "./stripe-types.js";

// ---- public types -----------------------------------------------------------------

export interface StripeSimOptions {
  /** 0 or omitted picks a free port. */
  port?: number;
  secretKey: string;
  webhookSecret: string;
  /** The one recurring price the simulator knows: the per-project monthly price. */
  priceId: string;
  /** Cents per unit per month; default 10000. */
  unitAmount?: number;
  /** Default "usd". */
  currency?: string;
  /** Base URL used in hosted Checkout / portal page links (`session.url`); default the simulator's own URL. */
  publicBaseUrl?: string;
  /** Where signed events are POSTed, e.g. http://localhost:7071/api/webhooks/stripe. */
  webhookUrl?: string;
  /**
   * Deliver emitted events to `webhookUrl` automatically (default true when `webhookUrl` is set).
   * API-triggered events go out in the background after the response, in order; the test
   * helpers (`completeCheckout`, `setSubscriptionStatus`, `advancePeriod`) await their deliveries.
   */
  autoDeliver?: boolean;
}

export interface RecordedRequest {
  method: string;
  /** Route template, e.g. `/v1/customers/:id` (the raw path when no route matched). */
  path: string;
  rawPath: string;
  idempotencyKey?: string;
  /** Decoded form body (POST) — or, for GET/DELETE, the decoded query string. */
  body: Record<string, unknown>;
  status: number;
}

export interface FaultSpec {
  status: 429 | 500 | 402;
  /** How many matching API calls fail; default 1. */
  count?: number;
  /** Only calls whose path starts with this, e.g. `/v1/subscriptions`. */
  pathPrefix?: string;
}

export interface StripeSimState {
  customers: Customer[];
  subscriptions: Subscription[];
  checkoutSessions: CheckoutSession[];
  portalSessions: PortalSession[];
  invoices: Invoice[];
  events: StripeEvent[];
}

export interface StripeSimulator {
  url: string;
  port: number;
  close(): Promise<void>;
  /** Every object, for assertions (copies). */
  state(): StripeSimState;
  /** The customer paying on the hosted Checkout page: creates the subscription and emits the events. */
  completeCheckout(sessionId: string): Promise<StripeEvent[]>;
  /** Moves a subscription to a status and emits the matching events. */
  setSubscriptionStatus(subscriptionId: string, status: string): Promise<StripeEvent[]>;
  /** Renews a subscription into its next monthly period (or ends it when `cancel_at_period_end`). */
  advancePeriod(subscriptionId: string): Promise<StripeEvent[]>;
  /** A signed webhook: pretty-printed payload plus `Stripe-Signature` header value. */
  signEvent(
    event: StripeEvent,
    opts?: { timestamp?: number; secret?: string },
  ): { payload: string; signature: string };
  /** POSTs one event, signed, to `webhookUrl`; returns the HTTP status (0 on a network error). */
  deliver(event: StripeEvent): Promise<number>;
  /** Waits until background deliveries queued so far have finished. */
  flushDeliveries(): Promise<void>;
  deliveries: Array<{ eventId: string; type: string; status: number }>;
  injectFault(f: FaultSpec): void;
  requests(): RecordedRequest[];
}

// ---- helpers ----------------------------------------------------------------------

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

function randomToken(length = 24): string {
  const bytes = randomBytes(length);
  let out = "";
  for (const b of bytes) out += ALPHABET.charAt(b % ALPHABET.length);
  return out;
}

function newId(prefix: string): string {
  return `${prefix}${randomToken()}`;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

const DAY = 86_400;

function addMonths(ts: number, months = 1): number {
  const d = new Date(ts * 1000);
  const day = d.getUTCDate();
  d.setUTCDate(1);
  d.setUTCMonth(d.getUTCMonth() + months);
  const daysInMonth = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate();
  d.setUTCDate(Math.min(day, daysInMonth));
  return Math.floor(d.getTime() / 1000);
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

function escapeHtml(s: string): string {
  return s
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

function formatMoney(cents: number, currency: string): string {
  return `${(cents / 100).toFixed(2)} ${currency.toUpperCase()}`;
}

function checkUrl(value: string | undefined, param: string): string | null {
  if (value === undefined) return null;
  try {
    new URL(value);
  } catch {
    throw invalidRequest("Not a valid URL", "url_invalid", param);
  }
  return value;
}

function maskKey(key: string): string {
  const prefixEnd = key.startsWith("sk_test_") ? 8 : key.startsWith("sk_live_") ? 8 : 0;
  if (key.length <= prefixEnd + 4) return key.replace(/./g, "*");
  return key.slice(0, prefixEnd) + "*".repeat(key.length - prefixEnd - 4) + key.slice(-4);
}

function header(req: SimRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

const SUB_STATUSES: ReadonlySet<string> = new Set<SubscriptionStatus>([
  "active",
  "trialing",
  "past_due",
  "canceled",
  "unpaid",
  "incomplete",
  "incomplete_expired",
  "paused",
]);

const PRORATION_BEHAVIORS = new Set(["create_prorations", "none", "always_invoice"]);

interface Ctx {
  path: Record<string, string>;
  /** Form body for POST; decoded query string for GET and DELETE. */
  input: FormObject;
  requestId: string;
  idempotencyKey: string | null;
  apiVersion: string;
}

interface Route {
  method: string;
  template: string;
  segments: string[];
  literals: number;
  allowed: ReadonlySet<string>;
  run(ctx: Ctx): object;
}

interface SessionExtras {
  lineItems: CheckoutLineItem[];
  subscriptionMetadata: Metadata;
  trialDays: number | null;
  subscriptionDescription: string | null;
}

interface StoredResponse {
  fingerprint: string;
  requestId: string;
  response: SimResponse;
}

interface ItemChange {
  id?: string;
  price?: string;
  quantity?: number;
  deleted?: boolean;
  metadata?: FormObject;
}

// ---- simulator --------------------------------------------------------------------

class StripeSim {
  readonly price: Price;
  readonly plan: Plan;
  readonly currency: string;
  readonly unitAmount: number;
  readonly customers = new Map<string, Customer>();
  readonly subscriptions = new Map<string, Subscription>();
  readonly invoices = new Map<string, Invoice>();
  readonly sessions = new Map<string, CheckoutSession>();
  readonly sessionExtras = new Map<string, SessionExtras>();
  readonly portals = new Map<string, PortalSession>();
  readonly events: StripeEvent[] = [];
  readonly log: RecordedRequest[] = [];
  readonly deliveries: Array<{ eventId: string; type: string; status: number }> = [];
  readonly idempotency = new Map<string, StoredResponse>();
  readonly faults: Array<{ status: 429 | 500 | 402; remaining: number; pathPrefix: string }> = [];
  readonly routes: Route[];
  private deliveryChain: Promise<void> = Promise.resolve();
  private invoiceCounter = 0;
  baseUrl = "";

  constructor(readonly opts: StripeSimOptions) {
    this.currency = (opts.currency ?? "usd").toLowerCase();
    this.unitAmount = opts.unitAmount ?? 10_000;
    const created = nowSeconds();
    const product = "prod_supafana_project";
    this.price = {
      id: opts.priceId,
      object: "price",
      active: true,
      billing_scheme: "per_unit",
      created,
      currency: this.currency,
      livemode: false,
      lookup_key: null,
      metadata: {},
      nickname: "Supafana monitored project",
      product,
      recurring: { interval: "month", interval_count: 1, meter: null, usage_type: "licensed" },
      tax_behavior: "unspecified",
      type: "recurring",
      unit_amount: this.unitAmount,
      unit_amount_decimal: String(this.unitAmount),
    };
    this.plan = {
      id: opts.priceId,
      object: "plan",
      active: true,
      amount: this.unitAmount,
      amount_decimal: String(this.unitAmount),
      billing_scheme: "per_unit",
      created,
      currency: this.currency,
      interval: "month",
      interval_count: 1,
      livemode: false,
      metadata: {},
      nickname: "Supafana monitored project",
      product,
      usage_type: "licensed",
    };
    this.routes = this.buildRoutes();
  }

  get publicBase(): string {
    return (this.opts.publicBaseUrl ?? this.baseUrl).replace(/\/+$/, "");
  }

  get autoDeliver(): boolean {
    return this.opts.webhookUrl !== undefined && this.opts.autoDeliver !== false;
  }

  // ---- events & webhooks ----

  emit(
    type: string,
    object: StripeObject,
    ctx: Ctx | null,
    previous?: Record<string, unknown>,
  ): StripeEvent {
    const event: StripeEvent = {
      id: newId("evt_"),
      object: "event",
      api_version: ctx?.apiVersion ?? Stripe.API_VERSION,
      created: nowSeconds(),
      data: { object: clone(object) },
      livemode: false,
      pending_webhooks: this.opts.webhookUrl === undefined ? 0 : 1,
      request: { id: ctx?.requestId ?? null, idempotency_key: ctx?.idempotencyKey ?? null },
      type,
    };
    if (previous && Object.keys(previous).length > 0) event.data.previous_attributes = previous;
    this.events.push(event);
    if (this.autoDeliver) {
      const snapshot = clone(event);
      this.deliveryChain = this.deliveryChain
        .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
        .then(async () => {
          await this.deliver(snapshot);
        })
        .catch(() => undefined);
    }
    return event;
  }

  flushDeliveries(): Promise<void> {
    return this.deliveryChain;
  }

  signEvent(
    event: StripeEvent,
    opts: { timestamp?: number; secret?: string } = {},
  ): { payload: string; signature: string } {
    const payload = JSON.stringify(event, null, 2);
    const t = opts.timestamp ?? nowSeconds();
    const v1 = createHmac("sha256", opts.secret ?? this.opts.webhookSecret)
      .update(`${t}.${payload}`, "utf8")
      .digest("hex");
    return { payload, signature: `t=${t},v1=${v1}` };
  }

  async deliver(event: StripeEvent): Promise<number> {
    const target = this.opts.webhookUrl;
    if (target === undefined) throw new Error("stripe simulator: webhookUrl is not configured");
    const { payload, signature } = this.signEvent(event);
    let status: number;
    try {
      const res = await fetch(target, {
        method: "POST",
        headers: {
          "content-type": "application/json; charset=utf-8",
          "stripe-signature": signature,
          "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        },
        body: payload,
        signal: AbortSignal.timeout(10_000),
      });
      await res.arrayBuffer();
      status = res.status;
    } catch {
      status = 0;
    }
    this.deliveries.push({ eventId: event.id, type: event.type, status });
    return status;
  }

  // ---- lookups ----

  liveCustomer(id: string, param: string, status: number): Customer {
    const c = this.customers.get(id);
    if (!c) throw noSuch("customer", id, param, status);
    return c;
  }

  getSubscription(id: string, param = "id", status = 404): Subscription {
    const s = this.subscriptions.get(id);
    if (!s) throw noSuch("subscription", id, param, status);
    return s;
  }

  findItem(itemId: string): { sub: Subscription; item: SubscriptionItem } | undefined {
    for (const sub of this.subscriptions.values()) {
      const item = sub.items.data.find((i) => i.id === itemId);
      if (item) return { sub, item };
    }
    return undefined;
  }

  findObject(id: string): object | undefined {
    if (id === this.price.id) return this.price;
    const found =
      this.customers.get(id) ??
      this.subscriptions.get(id) ??
      this.invoices.get(id) ??
      this.sessions.get(id) ??
      this.portals.get(id) ??
      this.events.find((e) => e.id === id);
    if (found) return found;
    return this.findItem(id)?.item;
  }

  // ---- billing model ----

  checkPrice(price: string, param: string): Price {
    if (price !== this.price.id) throw noSuch("price", price, param, 400);
    return this.price;
  }

  newItem(subId: string, quantity: number, start: number, end: number): SubscriptionItem {
    return {
      id: newId("si_"),
      object: "subscription_item",
      billing_thresholds: null,
      created: nowSeconds(),
      current_period_end: end,
      current_period_start: start,
      discounts: [],
      metadata: {},
      plan: clone(this.plan),
      price: clone(this.price),
      quantity,
      subscription: subId,
      tax_rates: [],
    };
  }

  setPeriod(sub: Subscription, start: number, end: number): void {
    sub.current_period_start = start;
    sub.current_period_end = end;
    for (const item of sub.items.data) {
      item.current_period_start = start;
      item.current_period_end = end;
    }
    if (sub.cancel_at_period_end) sub.cancel_at = end;
  }

  quantityOf(sub: Subscription): number {
    return sub.items.data.reduce((n, i) => n + i.quantity, 0);
  }

  createSubscription(args: {
    customer: Customer;
    quantities: number[];
    metadata: Metadata;
    trialDays: number | null;
    description: string | null;
  }): { sub: Subscription; invoice: Invoice } {
    const now = nowSeconds();
    const id = newId("sub_");
    const trialEnd = args.trialDays === null ? null : now + args.trialDays * DAY;
    const periodEnd = trialEnd ?? addMonths(now);
    const items = args.quantities.map((q) => this.newItem(id, q, now, periodEnd));
    const sub: Subscription = {
      id,
      object: "subscription",
      application: null,
      billing_cycle_anchor: periodEnd,
      cancel_at: null,
      cancel_at_period_end: false,
      canceled_at: null,
      cancellation_details: { comment: null, feedback: null, reason: null },
      collection_method: "charge_automatically",
      created: now,
      currency: this.currency,
      current_period_end: periodEnd,
      current_period_start: now,
      customer: args.customer.id,
      default_payment_method: null,
      description: args.description,
      discounts: [],
      ended_at: null,
      items: {
        object: "list",
        data: items,
        has_more: false,
        total_count: items.length,
        url: `/v1/subscription_items?subscription=${id}`,
      },
      latest_invoice: null,
      livemode: false,
      metadata: args.metadata,
      pause_collection: null,
      start_date: now,
      status: trialEnd === null ? "active" : "trialing",
      test_clock: null,
      trial_end: trialEnd,
      trial_start: trialEnd === null ? null : now,
    };
    this.subscriptions.set(id, sub);
    const invoice = this.createInvoice(sub, {
      status: "paid",
      billingReason: "subscription_create",
      free: trialEnd !== null,
    });
    sub.latest_invoice = invoice.id;
    return { sub, invoice };
  }

  invoiceLine(
    invoiceId: string,
    sub: Subscription,
    item: SubscriptionItem,
    opts: {
      amount?: number;
      quantity?: number;
      period: { start: number; end: number };
      proration?: boolean;
      description?: string;
    },
  ): InvoiceLine {
    const quantity = opts.quantity ?? item.quantity;
    const amount = opts.amount ?? quantity * this.unitAmount;
    return {
      id: newId("il_"),
      object: "line_item",
      amount,
      currency: this.currency,
      description:
        opts.description ??
        `${quantity} × Supafana monitored project (at ${formatMoney(this.unitAmount, this.currency)} / month)`,
      discountable: true,
      invoice: invoiceId,
      livemode: false,
      metadata: {},
      parent: {
        type: "subscription_item_details",
        invoice_item_details: null,
        subscription_item_details: {
          invoice_item: null,
          proration: opts.proration ?? false,
          proration_details: { credited_items: null },
          subscription: sub.id,
          subscription_item: item.id,
        },
      },
      period: opts.period,
      pricing: {
        type: "price_details",
        price_details: { price: this.price.id, product: this.price.product },
        unit_amount_decimal: String(this.unitAmount),
      },
      quantity,
      subscription: sub.id,
    };
  }

  buildInvoice(
    id: string,
    sub: Subscription,
    lines: InvoiceLine[],
    opts: {
      status: InvoiceStatus;
      billingReason: string;
      periodStart: number;
      periodEnd: number;
      created?: number;
    },
  ): Invoice {
    const customer = this.customers.get(sub.customer);
    const subtotal = lines.reduce((n, l) => n + l.amount, 0);
    const due = Math.max(0, subtotal);
    const created = opts.created ?? nowSeconds();
    const paid = opts.status === "paid";
    const finalized = opts.status !== "draft";
    return {
      id,
      object: "invoice",
      account_country: "US",
      account_name: "Supafana",
      amount_due: due,
      amount_paid: paid ? due : 0,
      amount_remaining: paid ? 0 : due,
      attempt_count: finalized && due > 0 ? 1 : 0,
      attempted: finalized,
      auto_advance: !paid,
      billing_reason: opts.billingReason,
      collection_method: "charge_automatically",
      created,
      currency: this.currency,
      customer: sub.customer,
      customer_email: customer?.email ?? null,
      customer_name: customer?.name ?? null,
      description: null,
      hosted_invoice_url: finalized ? `${this.publicBase}/invoices/${id}` : null,
      invoice_pdf: finalized ? `${this.publicBase}/invoices/${id}/pdf` : null,
      lines: {
        object: "list",
        data: lines,
        has_more: false,
        total_count: lines.length,
        url: `/v1/invoices/${id}/lines`,
      },
      livemode: false,
      metadata: {},
      next_payment_attempt: null,
      number: finalized ? `SUPA-${String(++this.invoiceCounter).padStart(4, "0")}` : null,
      parent: {
        type: "subscription_details",
        quote_details: null,
        subscription_details: { metadata: clone(sub.metadata), subscription: sub.id },
      },
      period_end: opts.periodEnd,
      period_start: opts.periodStart,
      status: opts.status,
      status_transitions: {
        finalized_at: finalized ? created : null,
        marked_uncollectible_at: null,
        paid_at: paid ? created : null,
        voided_at: null,
      },
      subscription: sub.id,
      subtotal,
      total: subtotal,
    };
  }

  /** A real (stored) invoice for the subscription's current period, or a proration charge. */
  createInvoice(
    sub: Subscription,
    opts: {
      status: "paid" | "open";
      billingReason: string;
      free?: boolean;
      lines?: (invoiceId: string) => InvoiceLine[];
      /** The invoice's own period; Stripe uses an empty one at creation time for the first invoice. */
      invoicePeriod?: { start: number; end: number };
    },
  ): Invoice {
    const id = newId("in_");
    const period = { start: sub.current_period_start, end: sub.current_period_end };
    const invoicePeriod = opts.invoicePeriod ?? {
      start: sub.current_period_start,
      end: sub.current_period_start,
    };
    const lines =
      opts.lines?.(id) ??
      sub.items.data.map((item) =>
        this.invoiceLine(id, sub, item, {
          period,
          ...(opts.free === true
            ? { amount: 0, description: `Trial period for Supafana monitored project` }
            : {}),
        }),
      );
    const invoice = this.buildInvoice(id, sub, lines, {
      status: opts.status,
      billingReason: opts.billingReason,
      periodStart: invoicePeriod.start,
      periodEnd: invoicePeriod.end,
    });
    this.invoices.set(id, invoice);
    return invoice;
  }

  markInvoicePaid(invoice: Invoice): void {
    const now = nowSeconds();
    invoice.status = "paid";
    invoice.amount_paid = invoice.amount_due;
    invoice.amount_remaining = 0;
    invoice.attempt_count += 1;
    invoice.attempted = true;
    invoice.auto_advance = false;
    invoice.next_payment_attempt = null;
    invoice.status_transitions.paid_at = now;
  }

  /** Applies `items[...]` changes to a subscription in place; returns the quantity delta. */
  applyItemChanges(sub: Subscription, changes: ItemChange[], paramBase: string): number {
    const before = this.quantityOf(sub);
    changes.forEach((change, i) => {
      const param = `${paramBase}[${i}]`;
      if (change.id !== undefined) {
        const item = sub.items.data.find((it) => it.id === change.id);
        if (!item) throw noSuch("subscription item", change.id, `${param}[id]`, 400);
        if (change.deleted === true) {
          sub.items.data = sub.items.data.filter((it) => it.id !== item.id);
          return;
        }
        if (change.price !== undefined) this.checkPrice(change.price, `${param}[price]`);
        if (change.quantity !== undefined) item.quantity = change.quantity;
        if (change.metadata !== undefined) {
          item.metadata = mergeMetadata(item.metadata, { metadata: change.metadata }, "metadata");
        }
        return;
      }
      if (change.price === undefined) {
        throw invalidRequest(
          `Missing required param: ${param}[price].`,
          "parameter_missing",
          `${param}[price]`,
        );
      }
      this.checkPrice(change.price, `${param}[price]`);
      if (sub.items.data.some((it) => it.price.id === change.price)) {
        throw invalidRequest(
          `Cannot add multiple subscription items with the same plan: ${change.price}`,
          undefined,
          paramBase,
        );
      }
      sub.items.data.push(
        this.newItem(
          sub.id,
          change.quantity ?? 1,
          sub.current_period_start,
          sub.current_period_end,
        ),
      );
    });
    if (sub.items.data.length === 0) {
      throw invalidRequest(
        "A subscription must have at least one active item.",
        undefined,
        paramBase,
      );
    }
    sub.items.total_count = sub.items.data.length;
    return this.quantityOf(sub) - before;
  }

  parseItemChanges(form: FormObject, key: string, paramBase: string): ItemChange[] {
    return arrayOfObjects(form, key).map((raw, i) => {
      const param = `${paramBase}[${i}]`;
      const change: ItemChange = {};
      const id = optString(raw, "id", `${param}[id]`);
      if (id !== undefined) change.id = id;
      const price =
        optString(raw, "price", `${param}[price]`) ?? optString(raw, "plan", `${param}[plan]`);
      if (price !== undefined) change.price = price;
      const quantity = optInt(raw, "quantity", `${param}[quantity]`, 0);
      if (quantity !== undefined) change.quantity = quantity;
      const deleted = optBool(raw, "deleted", `${param}[deleted]`);
      if (deleted !== undefined) change.deleted = deleted;
      const metadata = optObject(raw, "metadata", `${param}[metadata]`);
      if (metadata !== undefined) change.metadata = metadata;
      return change;
    });
  }

  /** Prorated amount for `delta` extra units over the rest of the current period. */
  prorationAmount(sub: Subscription, delta: number, at = nowSeconds()): number {
    const length = Math.max(1, sub.current_period_end - sub.current_period_start);
    const remaining = Math.min(length, Math.max(0, sub.current_period_end - at));
    return Math.round((delta * this.unitAmount * remaining) / length);
  }

  diff(before: Subscription, after: Subscription): Record<string, unknown> {
    const prev: Record<string, unknown> = {};
    const b = before as unknown as Record<string, unknown>;
    const a = after as unknown as Record<string, unknown>;
    for (const key of Object.keys(a)) {
      if (JSON.stringify(a[key]) !== JSON.stringify(b[key])) prev[key] = b[key];
    }
    return prev;
  }

  /** Shared by `POST /v1/subscriptions/:id` and `POST /v1/subscription_items/:id`. */
  updateSubscription(
    sub: Subscription,
    ctx: Ctx | null,
    mutate: (sub: Subscription) => number,
    proration: string | undefined,
  ): void {
    const before = clone(sub);
    const delta = mutate(sub);
    let invoice: Invoice | null = null;
    if (proration === "always_invoice" && delta > 0 && sub.status !== "trialing") {
      const amount = this.prorationAmount(sub, delta);
      const item = sub.items.data[0];
      if (item && amount > 0) {
        invoice = this.createInvoice(sub, {
          status: "paid",
          billingReason: "subscription_update",
          lines: (invId) => [
            this.invoiceLine(invId, sub, item, {
              amount,
              quantity: delta,
              proration: true,
              period: { start: nowSeconds(), end: sub.current_period_end },
              description: `Remaining time on ${delta} × Supafana monitored project`,
            }),
          ],
        });
        sub.latest_invoice = invoice.id;
      }
    }
    const previous = this.diff(before, sub);
    if (Object.keys(previous).length > 0) {
      this.emit("customer.subscription.updated", sub, ctx, previous);
    }
    if (invoice) this.emit("invoice.paid", invoice, ctx);
  }

  cancelNow(
    sub: Subscription,
    ctx: Ctx | null,
    details?: { comment?: string; feedback?: string },
  ): StripeEvent {
    const now = nowSeconds();
    sub.status = "canceled";
    sub.canceled_at = now;
    sub.ended_at = now;
    sub.cancellation_details = {
      comment: details?.comment ?? sub.cancellation_details.comment,
      feedback: details?.feedback ?? sub.cancellation_details.feedback,
      reason: "cancellation_requested",
    };
    return this.emit("customer.subscription.deleted", sub, ctx);
  }

  // ---- test-facing operations ----

  completeCheckout(sessionId: string): StripeEvent[] {
    const session = this.sessions.get(sessionId);
    const extras = this.sessionExtras.get(sessionId);
    if (!session || !extras)
      throw new Error(`stripe simulator: no such checkout session ${sessionId}`);
    if (session.status !== "open") {
      throw new Error(`stripe simulator: checkout session ${sessionId} is ${session.status}`);
    }
    const emitted: StripeEvent[] = [];
    let customer = session.customer === null ? undefined : this.customers.get(session.customer);
    if (!customer) {
      customer = this.createCustomer({
        email: session.customer_email ?? `customer-${randomToken(6).toLowerCase()}@example.test`,
        name: null,
        metadata: {},
      });
      emitted.push(this.emit("customer.created", customer, null));
    }
    session.customer = customer.id;
    session.customer_details = { email: customer.email, name: customer.name };
    session.status = "complete";
    session.url = null;
    let sub: Subscription | null = null;
    let invoice: Invoice | null = null;
    if (session.mode === "subscription") {
      ({ sub, invoice } = this.createSubscription({
        customer,
        quantities: extras.lineItems.map((li) => li.quantity),
        metadata: clone(extras.subscriptionMetadata),
        trialDays: extras.trialDays,
        description: extras.subscriptionDescription,
      }));
      session.subscription = sub.id;
      session.invoice = invoice.id;
      session.payment_status = invoice.amount_due > 0 ? "paid" : "no_payment_required";
    } else if (session.mode === "payment") {
      session.payment_status = "paid";
    } else {
      session.payment_status = "no_payment_required";
    }
    emitted.push(this.emit("checkout.session.completed", session, null));
    if (sub) emitted.push(this.emit("customer.subscription.created", sub, null));
    if (invoice) emitted.push(this.emit("invoice.paid", invoice, null));
    return emitted;
  }

  setSubscriptionStatus(subscriptionId: string, status: string): StripeEvent[] {
    const sub = this.subscriptions.get(subscriptionId);
    if (!sub) throw new Error(`stripe simulator: no such subscription ${subscriptionId}`);
    if (!SUB_STATUSES.has(status))
      throw new Error(`stripe simulator: unknown subscription status ${status}`);
    const next = status as SubscriptionStatus;
    if (sub.status === next) return [];
    if (sub.status === "canceled") {
      throw new Error(
        `stripe simulator: subscription ${subscriptionId} is canceled and cannot change`,
      );
    }
    const emitted: StripeEvent[] = [];
    if (next === "canceled") return [this.cancelNow(sub, null)];
    const before = clone(sub);
    const now = nowSeconds();
    let invoiceEvent: { type: string; invoice: Invoice } | null = null;
    const latest = sub.latest_invoice === null ? undefined : this.invoices.get(sub.latest_invoice);
    if (next === "past_due" || next === "unpaid") {
      let failed = latest?.status === "open" ? latest : undefined;
      if (!failed) {
        failed = this.createInvoice(sub, { status: "open", billingReason: "subscription_cycle" });
        sub.latest_invoice = failed.id;
      } else {
        failed.attempt_count += 1;
      }
      failed.next_payment_attempt = next === "past_due" ? now + 3 * DAY : null;
      invoiceEvent = { type: "invoice.payment_failed", invoice: failed };
    } else if (next === "active") {
      if (latest?.status === "open") {
        this.markInvoicePaid(latest);
        invoiceEvent = { type: "invoice.paid", invoice: latest };
      } else if (sub.status === "trialing") {
        sub.trial_end = now;
        this.setPeriod(sub, now, addMonths(now));
        sub.billing_cycle_anchor = now;
        const paid = this.createInvoice(sub, {
          status: "paid",
          billingReason: "subscription_cycle",
        });
        sub.latest_invoice = paid.id;
        invoiceEvent = { type: "invoice.paid", invoice: paid };
      }
    } else if (next === "trialing") {
      sub.trial_start = now;
      sub.trial_end = now + 14 * DAY;
      this.setPeriod(sub, now, sub.trial_end);
    }
    sub.status = next;
    if (invoiceEvent) emitted.push(this.emit(invoiceEvent.type, invoiceEvent.invoice, null));
    emitted.push(this.emit("customer.subscription.updated", sub, null, this.diff(before, sub)));
    return emitted;
  }

  advancePeriod(subscriptionId: string): StripeEvent[] {
    const sub = this.subscriptions.get(subscriptionId);
    if (!sub) throw new Error(`stripe simulator: no such subscription ${subscriptionId}`);
    if (sub.status === "canceled")
      throw new Error(`stripe simulator: subscription ${subscriptionId} is canceled`);
    if (sub.cancel_at_period_end) return [this.cancelNow(sub, null)];
    const before = clone(sub);
    const start = sub.current_period_end;
    this.setPeriod(sub, start, addMonths(start));
    if (sub.status === "trialing") sub.status = "active";
    const invoice = this.createInvoice(sub, {
      status: "paid",
      billingReason: "subscription_cycle",
      invoicePeriod: { start: before.current_period_start, end: start },
    });
    sub.latest_invoice = invoice.id;
    return [
      this.emit("invoice.paid", invoice, null),
      this.emit("customer.subscription.updated", sub, null, this.diff(before, sub)),
    ];
  }

  createCustomer(args: {
    email: string | null;
    name: string | null;
    metadata: Metadata;
  }): Customer {
    const customer: Customer = {
      id: newId("cus_"),
      object: "customer",
      address: null,
      balance: 0,
      created: nowSeconds(),
      currency: null,
      default_source: null,
      delinquent: false,
      description: null,
      email: args.email,
      invoice_prefix: randomToken(8).toUpperCase(),
      invoice_settings: {
        custom_fields: null,
        default_payment_method: null,
        footer: null,
        rendering_options: null,
      },
      livemode: false,
      metadata: args.metadata,
      name: args.name,
      phone: null,
      preferred_locales: [],
      shipping: null,
      tax_exempt: "none",
      test_clock: null,
    };
    this.customers.set(customer.id, customer);
    return customer;
  }

  // ---- list helpers ----

  paginate<T extends { id: string }>(newestFirst: T[], input: FormObject, url: string): ApiList<T> {
    const limit = optInt(input, "limit", "limit", 1) ?? 10;
    if (limit > 100)
      throw invalidRequest("This value must be less than or equal to 100.", undefined, "limit");
    let list = newestFirst;
    const after = optString(input, "starting_after");
    const before = optString(input, "ending_before");
    if (after !== undefined) {
      const i = list.findIndex((o) => o.id === after);
      if (i === -1) throw noSuch("object", after, "starting_after", 400);
      list = list.slice(i + 1);
    } else if (before !== undefined) {
      const i = list.findIndex((o) => o.id === before);
      if (i === -1) throw noSuch("object", before, "ending_before", 400);
      list = list.slice(Math.max(0, i - limit), i);
    }
    return { object: "list", data: list.slice(0, limit), has_more: list.length > limit, url };
  }

  // ---- expansion ----

  expand(result: object, paths: string[]): object {
    for (const path of paths) this.expandPath(result, path.split("."), path);
    return result;
  }

  private expandPath(node: unknown, parts: string[], full: string): void {
    if (Array.isArray(node)) {
      for (const el of node) this.expandPath(el, parts, full);
      return;
    }
    if (typeof node !== "object" || node === null) return;
    const [head, ...rest] = parts;
    if (head === undefined) return;
    const obj = node as Record<string, unknown>;
    if (head === "line_items" && obj.object === "checkout.session" && typeof obj.id === "string") {
      const extras = this.sessionExtras.get(obj.id);
      obj.line_items = {
        object: "list",
        data: clone(extras?.lineItems ?? []),
        has_more: false,
        url: `/v1/checkout/sessions/${obj.id}/line_items`,
      };
    }
    if (!(head in obj)) {
      throw invalidRequest(`This property cannot be expanded (${full}).`, undefined, "expand");
    }
    let value = obj[head];
    if (rest.length === 0 || typeof value === "string") {
      if (typeof value === "string") {
        const found = this.findObject(value);
        if (!found) return;
        value = clone(found);
        obj[head] = value;
      }
      if (rest.length === 0) return;
    }
    this.expandPath(value, rest, full);
  }

  // ---- routes ----

  private buildRoutes(): Route[] {
    const routes: Route[] = [];
    const add = (
      method: string,
      template: string,
      allowed: ReadonlySet<string>,
      run: (ctx: Ctx) => object,
    ): void => {
      const segments = template.split("/");
      routes.push({
        method,
        template,
        segments,
        literals: segments.filter((s) => !s.startsWith(":")).length,
        allowed,
        run,
      });
    };

    // customers
    add("POST", "/v1/customers", P.customerCreate, (ctx) => {
      const email = optString(ctx.input, "email") ?? null;
      if (email !== null && email !== "" && !/^[^@\s]+@[^@\s]+$/.test(email)) {
        throw invalidRequest(`Invalid email address: ${email}`, "email_invalid", "email");
      }
      const customer = this.createCustomer({
        email: email === "" ? null : email,
        name: optString(ctx.input, "name") ?? null,
        metadata: mergeMetadata({}, ctx.input),
      });
      customer.description = optString(ctx.input, "description") ?? null;
      customer.phone = optString(ctx.input, "phone") ?? null;
      this.emit("customer.created", customer, ctx);
      return customer;
    });
    add("GET", "/v1/customers/:id", P.expandOnly, (ctx) => {
      const id = ctx.path.id ?? "";
      const c = this.customers.get(id);
      if (!c) throw noSuch("customer", id);
      return c;
    });
    add("POST", "/v1/customers/:id", P.customerUpdate, (ctx) => {
      const c = this.liveCustomer(ctx.path.id ?? "", "id", 404);
      const before = clone(c);
      const email = optString(ctx.input, "email");
      if (email !== undefined) c.email = email === "" ? null : email;
      const name = optString(ctx.input, "name");
      if (name !== undefined) c.name = name === "" ? null : name;
      const description = optString(ctx.input, "description");
      if (description !== undefined) c.description = description === "" ? null : description;
      const phone = optString(ctx.input, "phone");
      if (phone !== undefined) c.phone = phone === "" ? null : phone;
      c.metadata = mergeMetadata(c.metadata, ctx.input);
      const prev: Record<string, unknown> = {};
      for (const key of ["email", "name", "description", "phone", "metadata"] as const) {
        if (JSON.stringify(before[key]) !== JSON.stringify(c[key])) prev[key] = before[key];
      }
      if (Object.keys(prev).length > 0) this.emit("customer.updated", c, ctx, prev);
      return c;
    });
    // checkout
    add("POST", "/v1/checkout/sessions", P.checkoutCreate, (ctx) =>
      this.createCheckoutSession(ctx),
    );
    // billing portal
    add("POST", "/v1/billing_portal/sessions", P.portalCreate, (ctx) => {
      const customerId = reqString(ctx.input, "customer");
      this.liveCustomer(customerId, "customer", 404);
      const id = newId("bps_");
      const portal: PortalSession = {
        id,
        object: "billing_portal.session",
        configuration: "bpc_supafana_default",
        created: nowSeconds(),
        customer: customerId,
        customer_account: null,
        flow: null,
        livemode: false,
        locale: optString(ctx.input, "locale") ?? null,
        on_behalf_of: null,
        return_url: checkUrl(optString(ctx.input, "return_url"), "return_url"),
        url: `${this.publicBase}/portal/${id}`,
      };
      this.portals.set(id, portal);
      return portal;
    });

    // subscriptions
    add("GET", "/v1/subscriptions", P.subscriptionList, (ctx) => {
      const customer = optString(ctx.input, "customer");
      const price = optString(ctx.input, "price") ?? optString(ctx.input, "plan");
      const status = optString(ctx.input, "status");
      if (
        status !== undefined &&
        status !== "all" &&
        status !== "ended" &&
        !SUB_STATUSES.has(status)
      ) {
        throw invalidRequest(`Invalid status: ${status}`, undefined, "status");
      }
      const list = [...this.subscriptions.values()]
        .filter((s) => customer === undefined || s.customer === customer)
        .filter((s) => price === undefined || s.items.data.some((i) => i.price.id === price))
        .filter((s) => {
          if (status === undefined)
            return s.status !== "canceled" && s.status !== "incomplete_expired";
          if (status === "all") return true;
          if (status === "ended")
            return s.status === "canceled" || s.status === "incomplete_expired";
          return s.status === status;
        })
        .reverse();
      return this.paginate(list, ctx.input, "/v1/subscriptions");
    });
    add("GET", "/v1/subscriptions/:id", P.expandOnly, (ctx) =>
      this.getSubscription(ctx.path.id ?? ""),
    );
    add("POST", "/v1/subscriptions/:id", P.subscriptionUpdate, (ctx) => {
      const sub = this.getSubscription(ctx.path.id ?? "");
      if (sub.status === "canceled") {
        const other = Object.keys(ctx.input).filter(
          (k) => !["metadata", "cancellation_details", "expand"].includes(k),
        );
        if (other.length > 0) {
          throw invalidRequest(
            "A canceled subscription can only update its cancellation_details and metadata.",
            undefined,
            other[0],
          );
        }
      }
      const proration = optString(ctx.input, "proration_behavior");
      if (proration !== undefined && !PRORATION_BEHAVIORS.has(proration)) {
        throw invalidRequest(
          `Invalid proration_behavior: ${proration}`,
          undefined,
          "proration_behavior",
        );
      }
      const changes = this.parseItemChanges(ctx.input, "items", "items");
      const cancelAtPeriodEnd = optBool(ctx.input, "cancel_at_period_end");
      const trialEnd = optString(ctx.input, "trial_end");
      const cancellation = optObject(ctx.input, "cancellation_details");
      this.updateSubscription(
        sub,
        ctx,
        (s) => {
          const delta = this.applyItemChanges(s, changes, "items");
          s.metadata = mergeMetadata(s.metadata, ctx.input);
          if (cancelAtPeriodEnd !== undefined) {
            s.cancel_at_period_end = cancelAtPeriodEnd;
            s.cancel_at = cancelAtPeriodEnd ? s.current_period_end : null;
            s.canceled_at = cancelAtPeriodEnd ? nowSeconds() : null;
          }
          if (cancellation) {
            s.cancellation_details = {
              ...s.cancellation_details,
              comment:
                optString(cancellation, "comment", "cancellation_details[comment]") ??
                s.cancellation_details.comment,
              feedback:
                optString(cancellation, "feedback", "cancellation_details[feedback]") ??
                s.cancellation_details.feedback,
            };
          }
          if (trialEnd === "now" && s.status === "trialing") {
            const now = nowSeconds();
            s.status = "active";
            s.trial_end = now;
            this.setPeriod(s, now, addMonths(now));
          }
          const description = optString(ctx.input, "description");
          if (description !== undefined) s.description = description === "" ? null : description;
          return delta;
        },
        proration,
      );
      return sub;
    });
    // invoices
    add("POST", "/v1/invoices/create_preview", P.invoicePreview, (ctx) => {
      const details = optObject(ctx.input, "subscription_details") ?? {};
      return this.previewInvoice(ctx.input, {
        changes: this.parseItemChanges(details, "items", "subscription_details[items]"),
        proration:
          optString(details, "proration_behavior", "subscription_details[proration_behavior]") ??
          "create_prorations",
        prorationDate: optInt(details, "proration_date", "subscription_details[proration_date]"),
        cancelAtPeriodEnd: optBool(
          details,
          "cancel_at_period_end",
          "subscription_details[cancel_at_period_end]",
        ),
      });
    });
    add("GET", "/v1/invoices/:id", P.expandOnly, (ctx) => {
      const id = ctx.path.id ?? "";
      const inv = this.invoices.get(id);
      if (!inv) throw noSuch("invoice", id);
      return inv;
    });

    return routes.sort((a, b) => b.literals - a.literals);
  }

  createCheckoutSession(ctx: Ctx): CheckoutSession {
    const input = ctx.input;
    const mode = reqString(input, "mode");
    if (mode !== "subscription" && mode !== "payment" && mode !== "setup") {
      throw invalidRequest(
        `Invalid mode: must be one of payment, setup, or subscription`,
        undefined,
        "mode",
      );
    }
    const customerId = optString(input, "customer");
    const customerEmail = optString(input, "customer_email");
    if (customerId !== undefined && customerEmail !== undefined) {
      throw invalidRequest(
        "You may only specify one of these parameters: customer, customer_email.",
        undefined,
        "customer_email",
      );
    }
    const customer =
      customerId === undefined ? null : this.liveCustomer(customerId, "customer", 400);
    const rawItems = arrayOfObjects(input, "line_items");
    if (mode !== "setup" && rawItems.length === 0) {
      throw invalidRequest(
        `You must specify \`line_items\` in \`${mode}\` mode.`,
        "parameter_missing",
        "line_items",
      );
    }
    const seen = new Set<string>();
    const lineItems = rawItems.map((li, i): CheckoutLineItem => {
      const param = `line_items[${i}]`;
      if (li.price_data !== undefined) {
        throw invalidRequest(
          "The Supafana Stripe simulator only supports line items that reference a price.",
          undefined,
          `${param}[price_data]`,
        );
      }
      const price = this.checkPrice(reqString(li, "price", `${param}[price]`), `${param}[price]`);
      if (seen.has(price.id)) {
        throw invalidRequest(
          `You cannot specify the same price more than once: ${price.id}`,
          undefined,
          `${param}[price]`,
        );
      }
      seen.add(price.id);
      const quantity = optInt(li, "quantity", `${param}[quantity]`, 1);
      if (quantity === undefined) {
        throw invalidRequest(
          `Quantity is required. Add \`quantity\` to \`${param}\``,
          "parameter_missing",
          `${param}[quantity]`,
        );
      }
      const amount = quantity * price.unit_amount;
      return {
        id: newId("li_"),
        object: "item",
        amount_discount: 0,
        amount_subtotal: amount,
        amount_tax: 0,
        amount_total: amount,
        currency: price.currency,
        description: "Supafana monitored project",
        price: clone(price),
        quantity,
      };
    });
    const subscriptionData = optObject(input, "subscription_data");
    if (subscriptionData && mode !== "subscription") {
      throw invalidRequest(
        `You can not pass \`subscription_data\` in \`${mode}\` mode.`,
        undefined,
        "subscription_data",
      );
    }
    const sd = subscriptionData ?? {};
    const clientReferenceId = optString(input, "client_reference_id") ?? null;
    if (clientReferenceId !== null && clientReferenceId.length > 200) {
      throw invalidRequest(
        "client_reference_id must be at most 200 characters.",
        undefined,
        "client_reference_id",
      );
    }
    const customerCreation = optString(input, "customer_creation");
    if (
      customerCreation !== undefined &&
      customerCreation !== "always" &&
      customerCreation !== "if_required"
    ) {
      throw invalidRequest(
        `Invalid customer_creation: ${customerCreation}`,
        undefined,
        "customer_creation",
      );
    }
    const now = nowSeconds();
    const id = `cs_test_${randomToken(58)}`;
    const total = lineItems.reduce((n, li) => n + li.amount_total, 0);
    const session: CheckoutSession = {
      id,
      object: "checkout.session",
      allow_promotion_codes: optBool(input, "allow_promotion_codes") ?? null,
      amount_subtotal: mode === "setup" ? null : total,
      amount_total: mode === "setup" ? null : total,
      automatic_tax: { enabled: false, liability: null, status: null },
      billing_address_collection: optString(input, "billing_address_collection") ?? null,
      cancel_url: checkUrl(optString(input, "cancel_url"), "cancel_url"),
      client_reference_id: clientReferenceId,
      client_secret: null,
      created: now,
      currency: mode === "setup" ? null : this.currency,
      customer: customer?.id ?? null,
      customer_creation: customer
        ? null
        : (customerCreation ?? (mode === "payment" ? "if_required" : "always")),
      customer_details: null,
      customer_email: customerEmail ?? null,
      expires_at: optInt(input, "expires_at") ?? now + DAY,
      invoice: null,
      livemode: false,
      locale: optString(input, "locale") ?? null,
      metadata: mergeMetadata({}, input),
      mode,
      payment_intent: null,
      payment_link: null,
      payment_method_types: ["card"],
      payment_status: "unpaid",
      setup_intent: null,
      status: "open",
      subscription: null,
      success_url: checkUrl(optString(input, "success_url"), "success_url"),
      total_details: { amount_discount: 0, amount_shipping: 0, amount_tax: 0 },
      ui_mode: "hosted",
      url: `${this.publicBase}/checkout/${id}`,
    };
    this.sessions.set(id, session);
    this.sessionExtras.set(id, {
      lineItems,
      subscriptionMetadata: mergeMetadata({}, sd, "metadata"),
      trialDays: optInt(sd, "trial_period_days", "subscription_data[trial_period_days]", 1) ?? null,
      subscriptionDescription:
        optString(sd, "description", "subscription_data[description]") ?? null,
    });
    return session;
  }

  previewInvoice(
    input: FormObject,
    opts: {
      changes: ItemChange[];
      proration: string;
      prorationDate: number | undefined;
      cancelAtPeriodEnd: boolean | undefined;
    },
  ): Invoice {
    const customerId = optString(input, "customer");
    const subId = optString(input, "subscription");
    if (customerId === undefined && subId === undefined) {
      throw invalidRequest(
        "Missing required param: customer. You must provide one of `customer` or `subscription`.",
        "parameter_missing",
        "customer",
      );
    }
    if (!PRORATION_BEHAVIORS.has(opts.proration)) {
      throw invalidRequest(
        `Invalid proration_behavior: ${opts.proration}`,
        undefined,
        "proration_behavior",
      );
    }
    if (customerId !== undefined) this.liveCustomer(customerId, "customer", 400);
    let sub: Subscription | undefined;
    if (subId !== undefined) {
      sub = this.getSubscription(subId, "subscription", 400);
      if (customerId !== undefined && sub.customer !== customerId) {
        throw invalidRequest(
          `The subscription ${subId} does not belong to customer ${customerId}.`,
          undefined,
          "subscription",
        );
      }
    } else {
      sub = [...this.subscriptions.values()]
        .reverse()
        .find(
          (s) =>
            s.customer === customerId &&
            s.status !== "canceled" &&
            s.status !== "incomplete_expired",
        );
    }
    const cancels = opts.cancelAtPeriodEnd ?? sub?.cancel_at_period_end ?? false;
    if (!sub || sub.status === "canceled" || sub.status === "incomplete_expired" || cancels) {
      const who = customerId ?? sub?.customer ?? "";
      throw invalidRequest(`No upcoming invoices for customer: ${who}`, "invoice_upcoming_none");
    }
    const draft = clone(sub);
    const delta = this.applyItemChanges(draft, opts.changes, "subscription_details[items]");
    const id = `upcoming_in_${randomToken()}`;
    const periodStart = draft.current_period_end;
    const nextEnd = addMonths(periodStart);
    const lines: InvoiceLine[] = draft.items.data.map((item) =>
      this.invoiceLine(id, draft, item, { period: { start: periodStart, end: nextEnd } }),
    );
    const first = draft.items.data[0];
    if (delta !== 0 && opts.proration !== "none" && draft.status !== "trialing" && first) {
      const at = opts.prorationDate ?? nowSeconds();
      const amount = this.prorationAmount(draft, delta, at);
      if (amount !== 0) {
        lines.unshift(
          this.invoiceLine(id, draft, first, {
            amount,
            quantity: Math.abs(delta),
            proration: true,
            period: { start: at, end: draft.current_period_end },
            description:
              delta > 0
                ? `Remaining time on ${delta} × Supafana monitored project`
                : `Unused time on ${-delta} × Supafana monitored project`,
          }),
        );
      }
    }
    const invoice = this.buildInvoice(id, draft, lines, {
      status: "draft",
      billingReason: "upcoming",
      periodStart: draft.current_period_start,
      periodEnd: draft.current_period_end,
      created: draft.current_period_end,
    });
    invoice.next_payment_attempt = draft.current_period_end;
    invoice.auto_advance = true;
    return invoice;
  }

  // ---- HTTP ----

  async handle(req: SimRequest): Promise<SimResponse> {
    if (req.path.startsWith("/v1/")) return this.handleApi(req);
    return this.handleHosted(req);
  }

  private matchRoute(
    method: string,
    path: string,
  ): { route: Route; params: Record<string, string> } | undefined {
    const parts = path.replace(/\/+$/, "").split("/");
    for (const route of this.routes) {
      if (route.method !== method || route.segments.length !== parts.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < parts.length && ok; i++) {
        const seg = route.segments[i] ?? "";
        const part = parts[i] ?? "";
        if (seg.startsWith(":")) {
          ok = part !== "";
          try {
            params[seg.slice(1)] = decodeURIComponent(part);
          } catch {
            ok = false;
          }
        } else {
          ok = seg === part;
        }
      }
      if (ok) return { route, params };
    }
    return undefined;
  }

  private handleApi(req: SimRequest): SimResponse {
    const requestId = `req_${randomToken(14)}`;
    const apiVersion = header(req, "stripe-version") ?? Stripe.API_VERSION;
    const idemKey = header(req, "idempotency-key");
    const matched = this.matchRoute(req.method, req.path);
    const record: RecordedRequest = {
      method: req.method,
      path: matched?.route.template ?? req.path,
      rawPath: req.path,
      body: {},
      status: 0,
    };
    if (idemKey !== undefined) record.idempotencyKey = idemKey;
    this.log.push(record);
    const baseHeaders: Record<string, string> = {
      "request-id": requestId,
      "stripe-version": apiVersion,
    };
    if (idemKey !== undefined) baseHeaders["idempotency-key"] = idemKey;

    const respond = (res: SimResponse): SimResponse => {
      record.status = res.status;
      return res;
    };
    const fail = (err: StripeApiError): SimResponse =>
      respond(json(err.status, err.toBody(), baseHeaders));

    let input: FormObject = {};
    let decodeError: StripeApiError | undefined;
    try {
      input =
        req.method === "POST" ? decodeForm(new URLSearchParams(req.text)) : decodeForm(req.query);
      record.body = input;
    } catch (err) {
      if (!(err instanceof StripeApiError)) throw err;
      decodeError = err;
    }

    // authentication
    const auth = header(req, "authorization") ?? "";
    let key: string | undefined;
    if (auth.startsWith("Bearer ")) key = auth.slice(7).trim();
    else if (auth.startsWith("Basic ")) {
      key = Buffer.from(auth.slice(6), "base64").toString("utf8").split(":")[0];
    }
    if (key === undefined || key === "") {
      return fail(
        new StripeApiError(
          401,
          "invalid_request_error",
          "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
        ),
      );
    }
    if (key !== this.opts.secretKey) {
      return fail(
        new StripeApiError(
          401,
          "invalid_request_error",
          `Invalid API Key provided: ${maskKey(key)}`,
          "api_key_invalid",
        ),
      );
    }

    if (decodeError) return fail(decodeError);

    // fault injection
    const faultIndex = this.faults.findIndex((f) => req.path.startsWith(f.pathPrefix));
    const fault = faultIndex === -1 ? undefined : this.faults[faultIndex];
    if (fault) {
      fault.remaining -= 1;
      if (fault.remaining <= 0) this.faults.splice(faultIndex, 1);
      if (fault.status === 429) {
        return fail(
          new StripeApiError(
            429,
            "invalid_request_error",
            "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
            "rate_limit",
          ),
        );
      }
      if (fault.status === 402) {
        return fail(
          new StripeApiError(
            402,
            "card_error",
            "Your card was declined.",
            "card_declined",
            undefined,
            {
              decline_code: "generic_decline",
            },
          ),
        );
      }
      return fail(
        new StripeApiError(
          500,
          "api_error",
          "An unknown error occurred while processing your request. The simulator injected this fault.",
        ),
      );
    }

    if (!matched) {
      return fail(
        new StripeApiError(
          404,
          "invalid_request_error",
          `Unrecognized request URL (${req.method}: ${req.path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.`,
        ),
      );
    }

    // idempotency
    const idempotent = idemKey !== undefined && (req.method === "POST" || req.method === "DELETE");
    const fingerprint = `${req.method} ${req.path} ${formFingerprint(req.method === "POST" ? req.text : req.query.toString())}`;
    if (idempotent) {
      const stored = this.idempotency.get(idemKey);
      if (stored) {
        if (stored.fingerprint !== fingerprint) {
          return fail(
            new StripeApiError(
              400,
              "idempotency_error",
              `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${idemKey}' if you meant to execute a different request.`,
            ),
          );
        }
        return respond({
          ...stored.response,
          headers: {
            ...stored.response.headers,
            "request-id": requestId,
            "idempotent-replayed": "true",
            "original-request": stored.requestId,
          },
        });
      }
    }

    const ctx: Ctx = {
      path: matched.params,
      input,
      requestId,
      idempotencyKey: idemKey ?? null,
      apiVersion,
    };
    let res: SimResponse;
    try {
      assertKnownParams(input, matched.route.allowed);
      const result = clone(matched.route.run(ctx));
      const expand = stringArray(input, "expand");
      res = json(200, expand.length > 0 ? this.expand(result, expand) : result, baseHeaders);
    } catch (err) {
      if (err instanceof StripeApiError) res = json(err.status, err.toBody(), baseHeaders);
      else throw err;
    }
    if (idempotent && (res.status < 400 || res.status === 402)) {
      this.idempotency.set(idemKey, { fingerprint, requestId, response: res });
    }
    return respond(res);
  }

  // ---- hosted pages (Checkout, portal) ----

  private page(status: number, title: string, body: string): SimResponse {
    const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}
button{font-size:1rem;padding:.6rem 1.4rem;cursor:pointer}.muted{color:#666}</style></head>
<body><p class="muted">Stripe simulator (test mode)</p><h1>${escapeHtml(title)}</h1>${body}</body></html>`;
    return { status, headers: { "content-type": "text/html; charset=utf-8" }, body: html };
  }

  private redirect(location: string): SimResponse {
    return { status: 303, headers: { location }, body: "" };
  }

  private async handleHosted(req: SimRequest): Promise<SimResponse> {
    const parts = req.path.split("/").filter((p) => p !== "");
    const [section, id, action, subId, subAction] = parts.map((p) => decodeURIComponent(p));
    if (section === "checkout" && id !== undefined) {
      const session = this.sessions.get(id);
      const extras = this.sessionExtras.get(id);
      if (!session || !extras) return this.page(404, "Checkout session not found", "");
      if (action === undefined && req.method === "GET") return this.checkoutPage(session, extras);
      if (action === "complete" && req.method === "POST") {
        if (session.status === "open") {
          this.completeCheckout(id);
          await this.flushDeliveries();
        }
        if (session.status !== "complete") {
          return this.page(410, "This Checkout session has expired", "");
        }
        if (session.success_url === null)
          return this.page(200, "Payment complete", "<p>Thanks!</p>");
        return this.redirect(session.success_url.replace(/\{CHECKOUT_SESSION_ID\}/g, session.id));
      }
      if (action === "cancel" && req.method === "GET") {
        if (session.cancel_url === null) return this.page(200, "Checkout canceled", "");
        return this.redirect(session.cancel_url);
      }
    }
    if (section === "portal" && id !== undefined) {
      const portal = this.portals.get(id);
      if (!portal) return this.page(404, "Portal session not found", "");
      if (action === undefined && req.method === "GET") return this.portalPage(portal);
      if (action === "subscriptions" && subId !== undefined && req.method === "POST") {
        const sub = this.subscriptions.get(subId);
        if (!sub || sub.customer !== portal.customer || sub.status === "canceled") {
          return this.page(404, "Subscription not found", "");
        }
        if (subAction === "cancel" || subAction === "renew") {
          const cancel = subAction === "cancel";
          this.updateSubscription(
            sub,
            null,
            (s) => {
              s.cancel_at_period_end = cancel;
              s.cancel_at = cancel ? s.current_period_end : null;
              s.canceled_at = cancel ? nowSeconds() : null;
              return 0;
            },
            "none",
          );
          await this.flushDeliveries();
          return this.redirect(`${this.publicBase}/portal/${portal.id}`);
        }
      }
    }
    return this.page(404, "Not found", "");
  }

  private checkoutPage(session: CheckoutSession, extras: SessionExtras): SimResponse {
    const rows = extras.lineItems
      .map(
        (li) =>
          `<li>${li.quantity} × ${escapeHtml(li.description)} — ${escapeHtml(formatMoney(li.amount_total, li.currency))} / month</li>`,
      )
      .join("");
    const base = `${this.publicBase}/checkout/${encodeURIComponent(session.id)}`;
    if (session.status !== "open") {
      return this.page(200, `Checkout session ${session.status}`, `<p>Nothing left to pay.</p>`);
    }
    const trial =
      extras.trialDays === null ? "" : `<p>Includes a ${extras.trialDays}-day free trial.</p>`;
    return this.page(
      200,
      "Subscribe to Supafana",
      `<ul>${rows}</ul>${trial}
<p>Total: <strong>${escapeHtml(formatMoney(session.amount_total ?? 0, this.currency))}</strong> / month</p>
<form method="post" action="${escapeHtml(`${base}/complete`)}"><button type="submit" id="pay">Pay</button></form>
${session.cancel_url === null ? "" : `<p><a href="${escapeHtml(`${base}/cancel`)}" id="cancel">Cancel</a></p>`}`,
    );
  }

  private portalPage(portal: PortalSession): SimResponse {
    const subs = [...this.subscriptions.values()].filter(
      (s) => s.customer === portal.customer && s.status !== "canceled",
    );
    const base = `${this.publicBase}/portal/${encodeURIComponent(portal.id)}/subscriptions`;
    const rows = subs
      .map((s) => {
        const action = s.cancel_at_period_end ? "renew" : "cancel";
        const label = s.cancel_at_period_end ? "Renew subscription" : "Cancel subscription";
        return `<li>${escapeHtml(s.id)}: ${this.quantityOf(s)} project(s), ${escapeHtml(s.status)}${
          s.cancel_at_period_end ? " (cancels at period end)" : ""
        }
<form method="post" action="${escapeHtml(`${base}/${encodeURIComponent(s.id)}/${action}`)}"><button type="submit">${label}</button></form></li>`;
      })
      .join("");
    const back =
      portal.return_url === null
        ? ""
        : `<p><a href="${escapeHtml(portal.return_url)}">Return to Supafana</a></p>`;
    return this.page(
      200,
      "Billing",
      `<ul>${rows || "<li>No active subscriptions</li>"}</ul>${back}`,
    );
  }
}

// ---- entry point ------------------------------------------------------------------

export async function startStripeSimulator(opts: StripeSimOptions): Promise<StripeSimulator> {
  const sim = new StripeSim(opts);
  const server = await startSimServer((req) => sim.handle(req), opts.port ?? 0);
  sim.baseUrl = server.url;
  const settle = async (events: StripeEvent[]): Promise<StripeEvent[]> => {
    await sim.flushDeliveries();
    return events.map(clone);
  };
  return {
    url: server.url,
    port: server.port,
    async close() {
      await sim.flushDeliveries();
      await server.close();
    },
    state: () =>
      clone({
        customers: [...sim.customers.values()],
        subscriptions: [...sim.subscriptions.values()],
        checkoutSessions: [...sim.sessions.values()],
        portalSessions: [...sim.portals.values()],
        invoices: [...sim.invoices.values()],
        events: sim.events,
      }),
    completeCheckout: async (sessionId) => settle(sim.completeCheckout(sessionId)),
    setSubscriptionStatus: async (subscriptionId, status) =>
      settle(sim.setSubscriptionStatus(subscriptionId, status)),
    advancePeriod: async (subscriptionId) => settle(sim.advancePeriod(subscriptionId)),
    signEvent: (event, o) => sim.signEvent(event, o),
    deliver: (event) => sim.deliver(event),
    flushDeliveries: () => sim.flushDeliveries(),
    deliveries: sim.deliveries,
    injectFault(f) {
      sim.faults.push({
        status: f.status,
        remaining: f.count ?? 1,
        pathPrefix: f.pathPrefix ?? "/v1/",
      });
    },
    requests: () => clone(sim.log),
  };
}
