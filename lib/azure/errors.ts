/**
 * One reading of every failure an Azure (or Supabase) call can raise: is it worth retrying, how
 * long the service asked us to wait, and a short message a user can read. Messages come from
 * the services' error bodies, never from request bodies, so they carry no secrets.
 */
import { AppError } from "../errors.js";

/** A non-2xx answer to a raw ARM request (deployments go through the raw pipeline). */
export class ArmRequestError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "ArmRequestError";
  }
}

export interface FailureInfo {
  /** 429, 5xx, 408/409/412 and network failures: retry later (never a permanent `AppError`). */
  transient: boolean;
  /** Not an error of a remote service at all (a bug): let it propagate. */
  unexpected: boolean;
  status?: number;
  code?: string;
  /** Short, readable, safe to store as `lastError`. */
  message: string;
  /** What the service asked for (`Retry-After`, rate-limit reset), in ms. */
  retryAfterMs?: number;
}

const NETWORK_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "REQUEST_SEND_ERROR",
]);

const MAX_MESSAGE = 300;

export function truncate(text: string, max = MAX_MESSAGE): string {
  const oneLine = text.replace(/\s+/g, " ").trim();
  return oneLine.length <= max ? oneLine : `${oneLine.slice(0, max - 1)}…`;
}

/** `Retry-After` as seconds or an HTTP date, in ms; undefined when absent or unreadable. */
export function parseRetryAfter(
  value: string | null | undefined,
  now = Date.now(),
): number | undefined {
  if (value === null || value === undefined || value.trim() === "") return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

const isTransientStatus = (s: number) =>
  s === 408 || s === 409 || s === 412 || s === 429 || s >= 500;

interface RestErrorLike {
  name?: string;
  statusCode?: number;
  code?: string;
  message?: string;
  response?: { headers?: { get(name: string): string | undefined }; bodyAsText?: string | null };
}

/** ARM's own error message from a RestError's body, when there is one. */
function armBodyMessage(e: RestErrorLike): { code?: string; message?: string } {
  const text = e.response?.bodyAsText;
  if (!text) return {};
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    return {
      ...(typeof body.error?.code === "string" ? { code: body.error.code } : {}),
      ...(typeof body.error?.message === "string" ? { message: body.error.message } : {}),
    };
  } catch {
    return {};
  }
}

export function describeFailure(err: unknown): FailureInfo {
  if (err instanceof ArmRequestError) {
    return {
      transient: isTransientStatus(err.statusCode),
      unexpected: false,
      status: err.statusCode,
      code: err.code,
      message: truncate(`Azure answered ${err.statusCode} ${err.code}: ${err.message}`),
      ...(err.retryAfterMs !== undefined ? { retryAfterMs: err.retryAfterMs } : {}),
    };
  }
  if (err instanceof AppError) {
    const retryAfterSeconds = err.details?.retryAfterSeconds;
    const retryAfterMs =
      typeof retryAfterSeconds === "number"
        ? retryAfterSeconds * 1000
        : parseRetryAfter(err.headers?.["retry-after"]);
    return {
      transient: !err.permanent && isTransientStatus(err.status),
      unexpected: false,
      status: err.status,
      code: err.code,
      message: truncate(err.message),
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    };
  }
  if (typeof err !== "object" || err === null) {
    return { transient: false, unexpected: true, message: "unexpected error" };
  }
  const e = err as RestErrorLike;
  if (e.name === "AbortError" || e.name === "TimeoutError") {
    return {
      transient: true,
      unexpected: false,
      code: "Timeout",
      message: "Azure did not answer in time.",
    };
  }
  if (e.name === "RestError" || typeof e.statusCode === "number") {
    const status = e.statusCode;
    if (status === undefined) {
      const code = e.code ?? "NetworkError";
      return {
        transient: true,
        unexpected: false,
        code,
        message: truncate(`Could not reach Azure (${code}).`),
      };
    }
    const body = armBodyMessage(e);
    const code = body.code ?? e.code ?? `HTTP${status}`;
    const retryAfterMs = parseRetryAfter(e.response?.headers?.get("retry-after"));
    return {
      transient: isTransientStatus(status),
      unexpected: false,
      status,
      code,
      message: truncate(`Azure answered ${status} ${code}: ${body.message ?? e.message ?? ""}`),
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    };
  }
  if (typeof e.code === "string" && NETWORK_CODES.has(e.code)) {
    return {
      transient: true,
      unexpected: false,
      code: e.code,
      message: truncate(`Could not reach Azure (${e.code}).`),
    };
  }
  return { transient: false, unexpected: true, message: "unexpected error" };
}

/** HTTP status of an SDK or raw ARM failure (undefined for network failures). */
export function armStatus(err: unknown): number | undefined {
  if (err instanceof ArmRequestError) return err.statusCode;
  if (typeof err === "object" && err !== null) {
    const s = (err as { statusCode?: unknown }).statusCode;
    if (typeof s === "number") return s;
  }
  return undefined;
}
