/**
 * The Stripe client: the `stripe` SDK only, created once per process and loaded on first use.
 * `STRIPE_API_URL` (the local simulator) replaces Stripe's host, port and protocol; a path in
 * that URL is not used (the SDK always calls `/v1/...`).
 */
import type Stripe from "stripe";

import { AppError, statusOf } from "../errors.js";
import type { Services } from "../services.js";

export type StripeClient = Stripe;

/** Options for `new Stripe(...)`, from the settings. Exported for tests. */
export function stripeOptions(apiUrl: string | undefined): Stripe.StripeConfig {
  const base: Stripe.StripeConfig = { maxNetworkRetries: 2, telemetry: false, timeout: 20_000 };
  if (!apiUrl) return base;
  const url = new URL(apiUrl);
  const protocol = url.protocol === "http:" ? "http" : "https";
  const port = url.port ? Number(url.port) : protocol === "http" ? 80 : 443;
  return { ...base, host: url.hostname, port, protocol };
}

export function stripeFor(services: Services): Promise<StripeClient> {
  return services.memo("stripe", async () => {
    const { default: StripeCtor } = await import("stripe");
    return new StripeCtor(
      services.config.STRIPE_SECRET_KEY,
      stripeOptions(services.config.STRIPE_API_URL),
    );
  });
}

/** Stripe's error `code` (e.g. `resource_missing`), when the error came from Stripe. */
export function stripeCode(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" ? code : undefined;
}

/**
 * Wraps a Stripe call made on behalf of a user: Stripe being down or refusing us is a 502 with a
 * message that reveals nothing of the request, never a 500 with a stack trace.
 */
export async function callStripe<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof AppError) throw err;
    const status = statusOf(err);
    throw new AppError(
      502,
      "upstream_error",
      `Stripe could not ${what} right now; try again in a moment.`,
      undefined,
      {
        cause: new Error(
          `stripe ${what} failed (${status ?? "network"}): ${stripeCode(err) ?? "no code"}`,
        ),
      },
    );
  }
}
