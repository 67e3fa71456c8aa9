/**
 * The typed API client: openapi-fetch over the types generated from `/api/openapi.json`
 * (`schema.d.ts`), so a contract change that breaks a call fails the type check. Every error
 * answer (`{ error: { code, message } }`) becomes an `ApiError`; a network failure becomes one
 * with code `network`.
 */
import createClient from "openapi-fetch";

import type { components, paths } from "./schema";

export const api = createClient<paths>({ baseUrl: "", credentials: "same-origin" });

export type JsonBody<T> = T extends { content: { "application/json": infer B } } ? B : never;
export type Op<P extends keyof paths, M extends keyof paths[P]> = paths[P][M];
/** The JSON body of an operation's 200 or 202 answer. */
export type Ok<P extends keyof paths, M extends keyof paths[P]> =
  Op<P, M> extends { responses: infer R }
    ? R extends Record<number, unknown>
      ? JsonBody<R[200]> | JsonBody<R[202]>
      : never
    : never;

export type Me = Ok<"/api/me", "get">;
export type Member = Ok<"/api/org/members", "get">[number];
export type CodeSent = Ok<"/api/me/verification", "post">;
export type ProjectList = Ok<"/api/projects", "get">;
export type Project = ProjectList["projects"][number];
export type Instance = Ok<"/api/projects/{ref}/grafana", "get">;
export type InstanceState = Instance["state"];
export type Billing = Ok<"/api/billing", "get">;
export type ErrorBody = components["schemas"]["Error"];

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
    /** Seconds from `Retry-After`, when the answer had one. */
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

const isErrorBody = (v: unknown): v is ErrorBody =>
  typeof v === "object" && v !== null && "error" in v && typeof v.error === "object";

let onUnauthorized: (err: ApiError) => void = () => undefined;
/** Called with every 401 answer (the session is gone: show Connect). */
export function setUnauthorizedHandler(fn: (err: ApiError) => void): void {
  onUnauthorized = fn;
}

/** Turns an openapi-fetch result into its data, or throws the answer's error as an ApiError. */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  const { response } = result;
  if (response.ok) return result.data as T;
  const retry = Number(response.headers.get("retry-after"));
  const retryAfter = Number.isFinite(retry) && retry > 0 ? retry : undefined;
  let err: ApiError;
  if (isErrorBody(result.error)) {
    const e = result.error.error;
    err = new ApiError(response.status, e.code, e.message, e.details ?? {}, retryAfter);
  } else {
    err = new ApiError(
      response.status,
      `http_${response.status}`,
      `The server answered ${response.status} ${response.statusText}.`,
      {},
      retryAfter,
    );
  }
  if (err.status === 401) onUnauthorized(err);
  throw err;
}

/** Runs a call; a failed fetch (offline, server down) becomes ApiError(0, "network"). */
export async function call<T>(
  run: () => Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  let result: { data?: T; error?: unknown; response: Response };
  try {
    result = await run();
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw new ApiError(
      0,
      "network",
      "The server could not be reached. Check your connection and try again.",
    );
  }
  return unwrap(result);
}

/** 402 refusals that a subscription solves. */
export const BILLING_CODES = new Set(["trial_used", "payment_required", "subscription_lapsed"]);
