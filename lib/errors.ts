/**
 * The one error type the app raises on purpose. It carries the HTTP status and a stable,
 * machine-readable code; its message is safe to show to the caller.
 */
export type ErrorCode =
  | "bad_request"
  | "validation_failed"
  | "invalid_ref"
  | "unauthenticated"
  | "session_expired"
  | "forbidden"
  | "csrf_origin_mismatch"
  | "verification_required"
  | "not_found"
  | "method_not_allowed"
  | "conflict"
  | "no_email"
  | "payment_required"
  | "trial_used"
  | "rate_limited"
  | "too_many_attempts"
  | "installation_revoked"
  | "upstream_error"
  | "unavailable"
  | "internal";

export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode | (string & {}),
    message: string,
    readonly details?: Record<string, unknown>,
    options?: { cause?: unknown; headers?: Record<string, string>; permanent?: boolean },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "AppError";
    this.headers = options?.headers;
    this.permanent = options?.permanent ?? false;
  }
  readonly headers: Record<string, string> | undefined;
  /** Retrying cannot help (e.g. Supabase refused the request), whatever the status says. */
  readonly permanent: boolean;
}
export const badRequest = (message: string, details?: Record<string, unknown>) =>
  new AppError(400, "bad_request", message, details);
export const forbidden = (message = "You may not do that.") =>
  new AppError(403, "forbidden", message);
export const notFound = (message = "Not found.") => new AppError(404, "not_found", message);
export const conflict = (message: string, code = "conflict") => new AppError(409, code, message);
export const tooManyRequests = (message: string, retryAfterSeconds: number) =>
  new AppError(
    429,
    "rate_limited",
    message,
    { retryAfterSeconds },
    {
      headers: { "retry-after": String(Math.max(1, Math.ceil(retryAfterSeconds))) },
    },
  );

/** Normalises anything thrown into an Error (for logging). */
export function toError(value: unknown): Error {
  if (value instanceof Error) return value;
  return new Error(typeof value === "string" ? value : JSON.stringify(value));
}

/** HTTP status of an error raised by an SDK (Azure RestError, Stripe, Supabase client), if any. */
export function statusOf(err: unknown): number | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const e = err as { statusCode?: unknown; status?: unknown };
  if (typeof e.statusCode === "number") return e.statusCode;
  if (typeof e.status === "number") return e.status;
  return undefined;
}
