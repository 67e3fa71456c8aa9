/**
 * HTTP plumbing shared by every route: one error shape, one error mapper, input parsing with the
 * route's zod schemas, and the CSRF origin guard.
 */
import type { HttpRequest, HttpResponseInit, InvocationContext } from "@azure/functions";
import { z } from "zod";

import { AppError } from "./errors.js";

export interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

const JSON_HEADERS = { "content-type": "application/json; charset=utf-8" } as const;
/** Every API answer is private and must not be sniffed or framed. */
const BASE_HEADERS = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
} as const;

export function json(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): HttpResponseInit {
  return { status, jsonBody: body, headers: { ...BASE_HEADERS, ...JSON_HEADERS, ...headers } };
}

export const ok = (body: unknown, headers?: Record<string, string>) => json(200, body, headers);
export const accepted = (body: unknown) => json(202, body);
export const noContent = (headers: Record<string, string> = {}): HttpResponseInit => ({
  status: 204,
  headers: { ...BASE_HEADERS, ...headers },
});
export const redirect = (
  location: string,
  headers: Record<string, string> = {},
): HttpResponseInit => ({
  status: 302,
  headers: { ...BASE_HEADERS, location, ...headers },
});

function errorResponse(
  status: number,
  code: string,
  message: string,
  details?: Record<string, unknown>,
  headers: Record<string, string> = {},
): HttpResponseInit {
  const body: ErrorBody = { error: { code, message, ...(details ? { details } : {}) } };
  return json(status, body, headers);
}

/**
 * Maps anything thrown by a handler to a response. `AppError`s below 500 are the caller's
 * mistake and are answered as they are; everything else is logged with the invocation id and
 * answered with a generic 500 that reveals nothing.
 */
export function toResponse(err: unknown, context: InvocationContext): HttpResponseInit {
  if (err instanceof AppError && err.status < 500) {
    return errorResponse(err.status, err.code, err.message, err.details, err.headers);
  }
  if (err instanceof AppError) {
    context.error(`request failed: ${err.code}: ${err.message}`, {
      invocationId: context.invocationId,
      cause: describeCause(err.cause),
    });
    return errorResponse(err.status, err.code, err.message, undefined, err.headers);
  }
  context.error("unhandled error", {
    invocationId: context.invocationId,
    error: describeCause(err),
  });
  return errorResponse(
    500,
    "internal",
    `Something went wrong on our side. Reference: ${context.invocationId}`,
  );
}

function describeCause(err: unknown): string | undefined {
  if (err === undefined) return undefined;
  if (err instanceof Error) return `${err.name}: ${err.message}\n${err.stack ?? ""}`;
  return typeof err === "string" ? err : JSON.stringify(err);
}

/** Turns zod issues into one readable message and a details list. */
function validationError(where: string, error: z.ZodError): AppError {
  const issues = error.issues.map((i) => ({
    path: i.path.map(String).join(".") || where,
    message: i.message,
  }));
  const first = issues[0];
  return new AppError(
    400,
    "validation_failed",
    first ? `Invalid ${where}: ${first.path}: ${first.message}` : `Invalid ${where}.`,
    { issues },
  );
}

export function parseWith<S extends z.ZodType>(
  schema: S,
  value: unknown,
  where: string,
): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw validationError(where, result.error);
  return result.data;
}

const MAX_JSON_BODY_BYTES = 64 * 1024;

/** Reads a JSON body; an empty body reads as `{}`. Malformed JSON is a 400, never a 500. */
export async function readJsonBody(req: HttpRequest): Promise<unknown> {
  const text = await req.text();
  if (text.length > MAX_JSON_BODY_BYTES) {
    throw new AppError(413, "payload_too_large", "The request body is too large.");
  }
  if (text.trim() === "") return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new AppError(400, "bad_request", "The request body is not valid JSON.");
  }
}

/**
 * CSRF guard for state-changing requests: the browser's `Origin` (or, failing that, `Referer`)
 * must be our own public origin.
 */
export function assertSameOrigin(req: HttpRequest, publicBaseUrl: string): void {
  const expected = new URL(publicBaseUrl).origin;
  const origin = req.headers.get("origin");
  let actual: string | undefined;
  if (origin && origin !== "null") actual = origin;
  else {
    const referer = req.headers.get("referer");
    if (referer) {
      try {
        actual = new URL(referer).origin;
      } catch {
        actual = undefined;
      }
    }
  }
  if (actual !== expected) {
    throw new AppError(
      403,
      "csrf_origin_mismatch",
      "This request must come from the Supafana app (Origin header missing or foreign).",
    );
  }
}

/** Project refs are 20 lower-case letters; anything else is refused before any I/O. */
export const projectRefSchema = z
  .string()
  .regex(/^[a-z]{20}$/, "must be a Supabase project ref (20 lower-case letters)");

export const errorBodySchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    details: z.record(z.string(), z.unknown()).optional(),
  }),
});

/** True when the text holds C0/C1 control characters (never valid in names we echo or log). */
export function hasControlCharacters(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return true;
  }
  return false;
}
