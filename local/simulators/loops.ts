/**
 * Simulator of the Loops transactional e-mail API, for the `loops` SDK's `sendTransactionalEmail`
 * and `testApiKey`. Mails are not delivered; they are recorded in `sent`.
 *
 * The SDK has no base-URL option: set its public `apiRoot` to `${sim.url}/api/` (the trailing
 * slash matters, the SDK resolves `v1/...` against it with `new URL`). In app settings that is
 * `LOOPS_API_URL=${sim.url}/api`.
 *
 * Endpoints (under `/api`, like `https://app.loops.so/api`):
 * - `POST /api/v1/transactional` `{transactionalId, email, addToAudience?, dataVariables?,
 *   attachments?}` → `200 {success: true}`. An `Idempotency-Key` (at most 100 characters) already
 *   used for a successful send within 24 hours gives `409 {success: false, message}` and no mail.
 * - `GET /api/v1/api-key` → `200 {success: true, teamName}`.
 * A missing or wrong Bearer key gives `401 {success: false, message, error: "Invalid API key"}`.
 * Every response carries `x-ratelimit-limit` and `x-ratelimit-remaining` (10 per second).
 */
import { json, startSimServer, type SimRequest, type SimResponse } from "./server.js";

export interface SentMail {
  transactionalId: string;
  email: string;
  dataVariables: Record<string, unknown>;
  /** ISO timestamp of acceptance. */
  at: string;
  idempotencyKey?: string;
  addToAudience?: boolean;
  attachments?: unknown[];
}

export interface LoopsSimulator {
  url: string;
  port: number;
  close(): Promise<void>;
  /** Live list of accepted mails, oldest first. */
  sent: SentMail[];
  /** Forgets sent mails and used idempotency keys. */
  clear(): void;
  /** Mails to one address (case-insensitive), newest last. */
  to(email: string): SentMail[];
  /** The next `count` (default 1) API requests fail with this status. */
  injectFault(status: 429 | 500, count?: number): void;
}

export interface LoopsSimOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  apiKey: string;
  /** Returned by `GET /api/v1/api-key`. */
  teamName?: string;
  /**
   * Published transactional e-mails: id → required data variable names. When given, an unknown
   * id gives 404 and a missing variable 400, as Loops does; when absent, any id is accepted.
   */
  templates?: Record<string, string[]>;
  /** Enforce the 10-requests-per-second team limit (429); default false (headers only). */
  enforceRateLimit?: boolean;
  /** Clock in epoch ms, for tests of the 24-hour idempotency window. */
  now?: () => number;
}

const RATE_LIMIT = 10;
const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000;
const EMAIL_PATTERN = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Loops accepts strings, numbers and arrays of objects of strings/numbers as variable values. */
function validVariable(v: unknown): boolean {
  if (typeof v === "string" || typeof v === "number") return true;
  return (
    Array.isArray(v) &&
    v.every(
      (item) =>
        isRecord(item) &&
        Object.values(item).every((x) => typeof x === "string" || typeof x === "number"),
    )
  );
}

export async function startLoopsSimulator(opts: LoopsSimOptions): Promise<LoopsSimulator> {
  const now = opts.now ?? Date.now;
  const sent: SentMail[] = [];
  const usedKeys = new Map<string, number>();
  const faults: Array<{ status: 429 | 500; remaining: number }> = [];
  let window = { start: 0, count: 0 };

  function rateHeaders(): { headers: Record<string, string>; over: boolean } {
    const t = now();
    if (t - window.start >= 1000) window = { start: t, count: 0 };
    window.count++;
    return {
      over: window.count > RATE_LIMIT,
      headers: {
        "x-ratelimit-limit": String(RATE_LIMIT),
        "x-ratelimit-remaining": String(Math.max(0, RATE_LIMIT - window.count)),
      },
    };
  }

  const fail = (status: number, message: string, extra: Record<string, unknown> = {}) =>
    json(status, { success: false, message, ...extra });

  function sendTransactional(req: SimRequest): SimResponse {
    let body: unknown;
    try {
      body = JSON.parse(req.text);
    } catch {
      return fail(400, "Invalid JSON in request body.");
    }
    if (!isRecord(body)) return fail(400, "Request body must be a JSON object.");
    const { transactionalId, email, dataVariables, addToAudience, attachments } = body;
    if (typeof transactionalId !== "string" || transactionalId === "") {
      return fail(400, "transactionalId is required.", { path: "transactionalId" });
    }
    if (typeof email !== "string" || !EMAIL_PATTERN.test(email)) {
      return fail(400, "A valid email address is required.", { path: "email" });
    }
    if (dataVariables !== undefined && !isRecord(dataVariables)) {
      return fail(400, "dataVariables must be an object.", { path: "dataVariables" });
    }
    const vars = dataVariables ?? {};
    const badVar = Object.entries(vars).find(([, v]) => !validVariable(v));
    if (badVar) {
      return fail(400, `Invalid value for data variable '${badVar[0]}'.`, {
        error: {
          path: `dataVariables.${badVar[0]}`,
          message: "must be a string, number or array of objects",
        },
      });
    }
    if (addToAudience !== undefined && typeof addToAudience !== "boolean") {
      return fail(400, "addToAudience must be a boolean.", { path: "addToAudience" });
    }
    if (attachments !== undefined && !Array.isArray(attachments)) {
      return fail(400, "attachments must be an array.", { path: "attachments" });
    }
    if (opts.templates) {
      const required = opts.templates[transactionalId];
      if (!required) {
        return fail(404, "Transactional email not found.", {
          error: { path: "transactionalId", message: "Transactional email not found." },
        });
      }
      const missing = required.filter((name) => !(name in vars));
      if (missing.length > 0) {
        return fail(
          400,
          `There are required fields for this email. You need to include a 'dataVariables' object with the required fields: ${missing.join(", ")}.`,
          { path: "dataVariables" },
        );
      }
    }

    const rawKey = req.headers["idempotency-key"];
    const key = Array.isArray(rawKey) ? rawKey[0] : rawKey;
    if (key !== undefined) {
      if (key.length === 0 || key.length > 100) {
        return fail(400, "Idempotency-Key must be between 1 and 100 characters.");
      }
      const usedAt = usedKeys.get(key);
      if (usedAt !== undefined && now() - usedAt < IDEMPOTENCY_WINDOW_MS) {
        return fail(409, "Idempotency key has been used.");
      }
      usedKeys.set(key, now());
    }

    const mail: SentMail = {
      transactionalId,
      email,
      dataVariables: vars,
      at: new Date(now()).toISOString(),
    };
    if (key !== undefined) mail.idempotencyKey = key;
    if (addToAudience !== undefined) mail.addToAudience = addToAudience;
    if (attachments !== undefined) mail.attachments = attachments;
    sent.push(mail);
    return json(200, { success: true });
  }

  function handler(req: SimRequest): SimResponse {
    if (!req.path.startsWith("/api/")) {
      return fail(404, `Not found. The Loops API lives under /api (got ${req.path}).`);
    }
    const limited = rateHeaders();
    const withLimits = (r: SimResponse): SimResponse => ({
      ...r,
      headers: { ...(r.headers ?? {}), ...limited.headers },
    });

    const fault = faults[0];
    if (fault) {
      if (--fault.remaining <= 0) faults.shift();
      if (fault.status === 429) {
        return json(
          429,
          { success: false, message: "Rate limit exceeded." },
          { "x-ratelimit-limit": String(RATE_LIMIT), "x-ratelimit-remaining": "0" },
        );
      }
      return withLimits(fail(500, "Internal server error."));
    }
    if (opts.enforceRateLimit && limited.over) {
      return withLimits(fail(429, "Rate limit exceeded."));
    }

    const auth = req.headers.authorization ?? "";
    if (auth !== `Bearer ${opts.apiKey}`) {
      return withLimits(fail(401, "Invalid API key", { error: "Invalid API key" }));
    }

    const path = req.path.replace(/\/+$/, "");
    if (path === "/api/v1/transactional") {
      if (req.method !== "POST") return withLimits(fail(405, "Method not allowed."));
      return withLimits(sendTransactional(req));
    }
    if (path === "/api/v1/api-key") {
      if (req.method !== "GET") return withLimits(fail(405, "Method not allowed."));
      return withLimits(
        json(200, { success: true, teamName: opts.teamName ?? "Supafana (local)" }),
      );
    }
    return withLimits(fail(404, `Not found: ${req.method} ${req.path}`));
  }

  const server = await startSimServer(handler, opts.port ?? 0);

  return {
    url: server.url,
    port: server.port,
    close: () => server.close(),
    sent,
    clear() {
      sent.length = 0;
      usedKeys.clear();
    },
    to(email) {
      const wanted = email.toLowerCase();
      return sent.filter((m) => m.email.toLowerCase() === wanted);
    },
    injectFault(status, count = 1) {
      if (count > 0) faults.push({ status, remaining: count });
    },
  };
}
