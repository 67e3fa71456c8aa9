/**
 * What the Azure Functions host hands the worker for each trigger, and how it writes an HTTP
 * function's answer back: the shapes of host 4.x talking to worker 3.9.x (whose capabilities
 * include RawHttpBodyBytes, RpcHttpBodyOnly and UseNullableValueDictionaryForHttp) and of the
 * Service Bus extension 5.x. One place builds each shape; everything that invokes a function
 * locally (the local host, tests, the benchmark) goes through it.
 */
import type { ServerResponse } from "node:http";

import type { RpcHttpCookie, RpcParameterBinding, RpcTypedData } from "./core-api.js";

export interface TriggerInput {
  inputData: RpcParameterBinding[];
  triggerMetadata: Record<string, RpcTypedData>;
}

/** Percent-decodes a route value as ASP.NET routing does: invalid escapes stay as they are. */
export function decodeRouteValue(raw: string): string {
  return raw.replace(/(?:%[0-9a-fA-F]{2})+/g, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      // An invalid UTF-8 sequence: decode nothing of it.
      return run;
    }
  });
}

const nullable = (entries: Iterable<[string, string]>) =>
  Object.fromEntries([...entries].map(([k, v]) => [k, { value: v }]));

/** The HTTP trigger's data: the request as `RpcHttp` with nullable dictionaries, body as bytes. */
export function httpTriggerInput(opts: {
  bindingName: string;
  method: string;
  url: URL;
  headers: Record<string, string | string[] | undefined>;
  params: Record<string, string>;
  body: Buffer;
}): TriggerInput {
  const headers: Array<[string, string]> = [];
  for (const [k, v] of Object.entries(opts.headers)) {
    if (v === undefined) continue;
    headers.push([k.toLowerCase(), Array.isArray(v) ? v.join(",") : v]);
  }
  const query = new Map<string, string>();
  for (const [k, v] of opts.url.searchParams) {
    const prev = query.get(k);
    query.set(k, prev === undefined ? v : `${prev},${v}`);
  }
  const http = {
    method: opts.method,
    url: opts.url.toString(),
    headers: {},
    nullableHeaders: nullable(headers),
    query: {},
    nullableQuery: nullable(query),
    params: {},
    nullableParams: nullable(Object.entries(opts.params)),
    identities: [],
    ...(opts.body.length > 0 ? { body: { bytes: new Uint8Array(opts.body) } } : {}),
  };
  const triggerMetadata: Record<string, RpcTypedData> = {};
  for (const [k, v] of Object.entries(opts.params)) triggerMetadata[k] = { string: v };
  triggerMetadata.Query = { json: JSON.stringify(Object.fromEntries(query)) };
  return { inputData: [{ name: opts.bindingName, data: { http } }], triggerMetadata };
}

/** `DateTime` (UTC) as the host serialises it: seven fractional digits and `Z`. */
export function dotnetUtc(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, ".$10000Z");
}

/** `DateTimeOffset` as the host serialises it: seven fractional digits and `+00:00`. */
export function dotnetOffset(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, ".$10000+00:00");
}

const MAX_DATE = "9999-12-31T23:59:59.9999999Z";
const json = (value: unknown): RpcTypedData => ({ json: JSON.stringify(value) });

/** The parts of a received Service Bus message the extension binds. */
export interface ServiceBusMessageLike {
  body: unknown;
  messageId?: string | number | Buffer | undefined;
  contentType?: string | undefined;
  sessionId?: string | undefined;
  lockToken?: string | undefined;
  /** The AMQP header's count of earlier deliveries (0 on the first). */
  deliveryCount?: number | undefined;
  sequenceNumber?: { toNumber(): number } | number | undefined;
  enqueuedTimeUtc?: Date | undefined;
  expiresAtUtc?: Date | undefined;
  applicationProperties?: Record<string, unknown> | undefined;
  /** Set on messages of a `$DeadLetterQueue`. */
  deadLetterReason?: string | undefined;
  deadLetterErrorDescription?: string | undefined;
}

/** The message body as text, as the extension binds it for a Node function. */
function bodyText(body: unknown): string {
  if (Buffer.isBuffer(body)) return body.toString("utf8");
  if (body instanceof Uint8Array) return Buffer.from(body).toString("utf8");
  if (typeof body === "string") return body;
  return JSON.stringify(body ?? null);
}

/**
 * The Service Bus trigger's data, with exactly the binding-data keys and value encodings the
 * extension 5.x sends (PascalCase, dates as .NET serialises them, counts as JSON numbers, null
 * values left out). A dead letter's reason and description are application properties of the
 * message (`DeadLetterReason`, `DeadLetterErrorDescription`); there is no top-level key for them.
 */
export function serviceBusTriggerInput(
  message: ServiceBusMessageLike,
  opts: { bindingName: string; isSessionsEnabled: boolean },
): TriggerInput {
  const enqueued = message.enqueuedTimeUtc ?? new Date(0);
  const applicationProperties: Record<string, unknown> = {
    ...(message.applicationProperties ?? {}),
  };
  if (message.deadLetterReason !== undefined)
    applicationProperties.DeadLetterReason ??= message.deadLetterReason;
  if (message.deadLetterErrorDescription !== undefined)
    applicationProperties.DeadLetterErrorDescription ??= message.deadLetterErrorDescription;
  const sequence =
    typeof message.sequenceNumber === "number"
      ? message.sequenceNumber
      : (message.sequenceNumber?.toNumber() ?? 0);

  const meta: Record<string, RpcTypedData> = {
    DeliveryCount: json((message.deliveryCount ?? 0) + 1),
    LockToken: { string: message.lockToken ?? "00000000-0000-0000-0000-000000000000" },
    ExpiresAtUtc: json(message.expiresAtUtc ? dotnetUtc(message.expiresAtUtc) : MAX_DATE),
    ExpiresAt: json(
      message.expiresAtUtc
        ? dotnetOffset(message.expiresAtUtc)
        : "9999-12-31T23:59:59.9999999+00:00",
    ),
    EnqueuedTimeUtc: json(dotnetUtc(enqueued)),
    EnqueuedTime: json(dotnetOffset(enqueued)),
    SequenceNumber: json(sequence),
    ApplicationProperties: json(applicationProperties),
    UserProperties: json(applicationProperties),
    MessageReceiver: json({}),
    MessageActions: json({}),
    ReceiveActions: json({}),
    Client: json({}),
  };
  if (message.messageId !== undefined) meta.MessageId = { string: String(message.messageId) };
  if (message.contentType) meta.ContentType = { string: message.contentType };
  // A message of a session carries its id (null, and so absent, otherwise).
  if (message.sessionId !== undefined) meta.SessionId = { string: message.sessionId };
  if (opts.isSessionsEnabled) {
    meta.MessageSession = json({});
    meta.SessionActions = json({});
  }
  return {
    inputData: [{ name: opts.bindingName, data: { string: bodyText(message.body) } }],
    triggerMetadata: meta,
  };
}

/** The timer trigger's data (the library camel-cases it). */
export function timerTriggerInput(opts: {
  bindingName: string;
  last?: Date;
  next: Date;
  isPastDue?: boolean;
}): TriggerInput {
  const timer = {
    Schedule: { AdjustForDST: true },
    ScheduleStatus: {
      Last: opts.last ? dotnetOffset(opts.last) : "0001-01-01T00:00:00+00:00",
      Next: dotnetOffset(opts.next),
      LastUpdated: dotnetOffset(opts.last ?? opts.next),
    },
    IsPastDue: opts.isPastDue ?? false,
  };
  return {
    inputData: [{ name: opts.bindingName, data: { json: JSON.stringify(timer) } }],
    triggerMetadata: {},
  };
}

/** One `Set-Cookie` line as the host writes an RPC cookie (ASP.NET's cookie options). */
export function setCookieLine(c: RpcHttpCookie): string {
  const parts = [`${c.name}=${c.value}`];
  const expires = c.expires?.value?.seconds;
  if (expires !== undefined && expires !== null) {
    parts.push(`expires=${new Date(Number(expires) * 1000).toUTCString()}`);
  }
  const maxAge = c.maxAge?.value;
  if (maxAge !== undefined && maxAge !== null) parts.push(`max-age=${maxAge}`);
  if (c.domain?.value) parts.push(`domain=${c.domain.value}`);
  parts.push(`path=${c.path?.value ?? "/"}`);
  if (c.secure?.value) parts.push("secure");
  if (c.sameSite === "lax" || c.sameSite === "strict") parts.push(`samesite=${c.sameSite}`);
  else if (c.sameSite === "explicitNone") parts.push("samesite=none");
  if (c.httpOnly?.value) parts.push("httponly");
  return parts.join("; ");
}

function bodyBytes(body: RpcTypedData | null | undefined): Buffer {
  if (!body) return Buffer.alloc(0);
  if (body.bytes) return Buffer.from(body.bytes);
  if (typeof body.string === "string") return Buffer.from(body.string);
  if (typeof body.json === "string") return Buffer.from(body.json);
  return Buffer.alloc(0);
}

/** Writes an HTTP function's RPC answer to the client as the host does. */
export function writeHttpResult(res: ServerResponse, result: RpcTypedData | null | undefined) {
  const http = result?.http;
  if (!http) {
    res.writeHead(204).end();
    return 204;
  }
  const status = Number(http.statusCode ?? 200) || 200;
  const headers: Record<string, string | string[]> = { ...(http.headers ?? {}) };
  const cookies = (http.cookies ?? []).map(setCookieLine);
  if (cookies.length) headers["set-cookie"] = cookies;
  const payload = bodyBytes(http.body);
  res.writeHead(status, headers);
  res.end(payload);
  return status;
}
