/**
 * Request/response operations of the emulator: `$cbs` token puts and the per-entity
 * `$management` operations the SDK uses (schedule, cancel, peek, renew locks, settle by token).
 */
import {
  decodeMessage,
  isBuffer,
  lockTokenFromRequest,
  longArray,
  readLong,
  timestampArray,
  type WireMessage,
} from "./encoding.js";
import { Broker, BrokerError, Condition, type QueueEntity } from "./broker.js";
import { encodeForDelivery } from "./messages.js";

export const MANAGEMENT_NODE = "$management";
export const CBS_NODE = "$cbs";

export const Operation = {
  putToken: "put-token",
  scheduleMessage: "com.microsoft:schedule-message",
  cancelScheduledMessage: "com.microsoft:cancel-scheduled-message",
  peekMessage: "com.microsoft:peek-message",
  renewLock: "com.microsoft:renew-lock",
  renewSessionLock: "com.microsoft:renew-session-lock",
  updateDisposition: "com.microsoft:update-disposition",
} as const;

interface Reply {
  status?: number;
  body?: unknown;
}

type Body = Record<string, unknown>;

const STATUS_BY_CONDITION: Record<Condition, number> = {
  [Condition.notFound]: 404,
  [Condition.messageNotFound]: 404,
  [Condition.notAllowed]: 400,
  [Condition.argumentError]: 400,
  [Condition.notImplemented]: 501,
  [Condition.messageLockLost]: 410,
  [Condition.sessionLockLost]: 410,
  [Condition.sessionCannotBeLocked]: 410,
};

function argumentError(description: string): BrokerError {
  return new BrokerError(Condition.argumentError, description);
}

function list(body: Body, key: string): unknown[] {
  const value = body[key];
  if (!Array.isArray(value)) throw argumentError(`The request body must hold an array "${key}".`);
  return value;
}

function text(body: Body, key: string): string {
  const value = body[key];
  if (typeof value !== "string")
    throw argumentError(`The request body must hold a string "${key}".`);
  return value;
}

function optionalText(body: Body, key: string): string | undefined {
  const value = body[key];
  return typeof value === "string" ? value : undefined;
}

function optionalMap(body: Body, key: string): Record<string, unknown> | undefined {
  const value = body[key];
  return typeof value === "object" && value !== null && !Array.isArray(value) && !isBuffer(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function lockTokens(body: Body): string[] {
  return list(body, "lock-tokens").map((raw) => {
    const token = lockTokenFromRequest(raw);
    if (token === undefined) throw argumentError("Invalid lock token in the request.");
    return token;
  });
}

function sequenceNumbers(body: Body): number[] {
  return list(body, "sequence-numbers").map((raw) => {
    const n = readLong(raw);
    if (n === undefined) throw argumentError("Invalid sequence number in the request.");
    return n;
  });
}

const SCHEDULED_ENQUEUE_TIME = "x-opt-scheduled-enqueue-time";

const operations: Record<string, (entity: QueueEntity, body: Body) => Reply> = {
  [Operation.scheduleMessage]: (entity, body) => {
    const numbers: number[] = [];
    for (const entry of list(body, "messages")) {
      const encoded =
        typeof entry === "object" && entry !== null ? (entry as Body).message : undefined;
      if (!isBuffer(encoded)) throw argumentError("Each scheduled message must be encoded bytes.");
      const wire = decodeMessage(encoded);
      const at = wire.message_annotations?.[SCHEDULED_ENQUEUE_TIME];
      if (!(at instanceof Date))
        throw argumentError("A scheduled message needs a scheduled enqueue time.");
      numbers.push(...entity.send([wire], at));
    }
    return { body: { "sequence-numbers": longArray(numbers) } };
  },

  [Operation.cancelScheduledMessage]: (entity, body) => {
    for (const n of sequenceNumbers(body)) entity.cancelScheduled(n);
    return {};
  },

  [Operation.peekMessage]: (entity, body) => {
    const from = readLong(body["from-sequence-number"]) ?? 1;
    const count = typeof body["message-count"] === "number" ? body["message-count"] : 1;
    const messages = entity.peek(from, count, optionalText(body, "session-id"));
    if (messages.length === 0) return { status: 204 };
    return { body: { messages: messages.map((m) => ({ message: encodeForDelivery(m) })) } };
  },

  [Operation.renewLock]: (entity, body) => ({
    body: {
      expirations: timestampArray(lockTokens(body).map((t) => new Date(entity.renewLock(t)))),
    },
  }),

  [Operation.renewSessionLock]: (entity, body) => ({
    body: { expiration: new Date(entity.renewSessionLock(text(body, "session-id"))) },
  }),

  [Operation.updateDisposition]: (entity, body) => {
    const status = text(body, "disposition-status");
    const propertiesToModify = optionalMap(body, "properties-to-modify");
    for (const token of lockTokens(body)) {
      if (status === "completed") entity.complete(token);
      else if (status === "abandoned") entity.abandon(token, { propertiesToModify });
      else if (status === "suspended") {
        entity.deadLetter(token, {
          propertiesToModify,
          reason: optionalText(body, "deadletter-reason"),
          description: optionalText(body, "deadletter-description"),
        });
      } else {
        throw new BrokerError(
          Condition.notImplemented,
          `Disposition '${status}' is not supported by the emulator.`,
        );
      }
    }
    return {};
  },
};

function response(
  request: WireMessage,
  properties: Record<string, unknown>,
  body?: unknown,
): WireMessage {
  const reply: WireMessage = {
    correlation_id: request.message_id,
    application_properties: properties,
  };
  if (body !== undefined) reply.body = body;
  return reply;
}

function requestBody(request: WireMessage): Body {
  const body = request.body;
  return typeof body === "object" && body !== null && !Array.isArray(body) ? (body as Body) : {};
}

/** Answers one `<entity>/$management` request. */
export function handleManagementRequest(entity: QueueEntity, request: WireMessage): WireMessage {
  const operation = request.application_properties?.operation;
  const handler = typeof operation === "string" ? operations[operation] : undefined;
  try {
    if (!handler) {
      throw new BrokerError(
        Condition.notImplemented,
        `Operation '${String(operation)}' is not supported by the emulator.`,
      );
    }
    const reply = handler(entity, requestBody(request));
    const status = reply.status ?? 200;
    return response(
      request,
      { statusCode: status, statusDescription: status === 204 ? "No Content" : "OK" },
      reply.body,
    );
  } catch (err) {
    if (!(err instanceof BrokerError)) throw err;
    return response(request, {
      statusCode: STATUS_BY_CONDITION[err.condition],
      statusDescription: err.message,
      errorCondition: err.condition,
    });
  }
}

/** The entity path an audience or address names: `sb://host/queue/$management` → `queue`. */
export function entityPathOf(address: string): string {
  let path = address;
  const scheme = /^[a-z]+:\/\/[^/]*/i.exec(path);
  if (scheme) path = path.slice(scheme[0].length);
  path = decodeURIComponent(path).replace(/^\/+|\/+$/g, "");
  const suffix = `/${MANAGEMENT_NODE}`;
  if (path.toLowerCase().endsWith(suffix.toLowerCase())) path = path.slice(0, -suffix.length);
  return path;
}

/**
 * Answers a `$cbs` put-token. Any token is accepted; an audience naming an entity that does not
 * exist gets the 404 Service Bus answers with.
 */
export function handleCbsRequest(broker: Broker, request: WireMessage): WireMessage {
  const props = request.application_properties ?? {};
  const audience = typeof props.name === "string" ? props.name : "";
  if (props.operation !== Operation.putToken) {
    return response(request, {
      "status-code": 400,
      "status-description": `Unsupported $cbs operation.`,
    });
  }
  const path = entityPathOf(audience);
  if (path !== "" && !broker.entity(path)) {
    return response(request, {
      "status-code": 404,
      "status-description": `The messaging entity '${audience}' could not be found.`,
    });
  }
  return response(request, { "status-code": 202, "status-description": "Accepted" });
}
