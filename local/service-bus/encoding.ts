/**
 * Message encoding for the Service Bus emulator, over rhea's codec: the typed message shape the
 * emulator works with, batch envelopes, and Service Bus wire conventions (lock tokens as delivery
 * tags, .NET ticks, arrays of longs and timestamps).
 */
import rhea from "rhea";
import type { Typed } from "rhea";

/** Message format of a batch envelope whose data sections each hold one encoded message. */
export const BATCH_MESSAGE_FORMAT = 0x80013700;

/** The fields of an AMQP message the emulator reads or writes (rhea's decoded form). */
export interface WireMessage {
  // header
  durable?: boolean;
  priority?: number;
  ttl?: number;
  first_acquirer?: boolean;
  delivery_count?: number;
  message_annotations?: Record<string, unknown>;
  // properties
  message_id?: string | number | Buffer;
  user_id?: Buffer;
  to?: string;
  subject?: string;
  reply_to?: string;
  correlation_id?: string | number | Buffer;
  content_type?: string;
  content_encoding?: string;
  absolute_expiry_time?: Date;
  creation_time?: Date;
  group_id?: string;
  group_sequence?: number;
  reply_to_group_id?: string;
  application_properties?: Record<string, unknown>;
  /** A rhea body section (data / sequence) or a plain AMQP value. */
  body?: unknown;
}

export function isBuffer(value: unknown): value is Buffer {
  return Buffer.isBuffer(value);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !isBuffer(value);
}

// ---------------------------------------------------------------------------------------------
// Messages

/** A decoded message as a plain object (delivery annotations are hop-by-hop: dropped). */
export function toWireMessage(decoded: object): WireMessage {
  const message: Record<string, unknown> = { ...decoded };
  delete message.delivery_annotations;
  return message;
}

export function decodeMessage(data: Buffer): WireMessage {
  return toWireMessage(rhea.message.decode(data));
}

export function encodeMessage(message: WireMessage): Buffer {
  return rhea.message.encode(message);
}

/** rhea's decoded body sections carry a typecode and their content. */
function bodySectionContent(body: unknown): unknown {
  return isRecord(body) && typeof body.typecode === "number" ? body.content : body;
}

/**
 * Unpacks a batch envelope (message format {@link BATCH_MESSAGE_FORMAT}): every data section
 * of the envelope's body is one complete encoded message.
 */
export function unpackBatch(envelope: Buffer): WireMessage[] {
  const content = bodySectionContent(decodeMessage(envelope).body);
  const parts = Array.isArray(content) ? content : [content];
  return parts.map((part) => {
    if (!isBuffer(part)) throw new Error("A batch envelope must hold only data sections");
    return decodeMessage(part);
  });
}

/** The message id as Service Bus reports it (a string). */
export function messageIdText(id: WireMessage["message_id"]): string | undefined {
  if (id === undefined) return undefined;
  if (isBuffer(id)) return id.length === 16 ? rhea.uuid_to_string(id) : id.toString("hex");
  return String(id);
}

// ---------------------------------------------------------------------------------------------
// Lock tokens

/**
 * Service Bus sends lock tokens as delivery tags holding a GUID in .NET byte order (the first
 * three groups little-endian). The SDK swaps them back to build the lock-token string, and later
 * sends that string as a standard big-endian UUID in `$management` requests.
 */
function swapGuidByteOrder(bytes: Buffer): Buffer {
  const b = Buffer.from(bytes);
  return Buffer.concat([
    b.subarray(0, 4).reverse(),
    b.subarray(4, 6).reverse(),
    b.subarray(6, 8).reverse(),
    b.subarray(8),
  ]);
}

export function newLockToken(): string {
  return rhea.generate_uuid();
}

export function lockTokenToDeliveryTag(lockToken: string): Buffer {
  return swapGuidByteOrder(rhea.string_to_uuid(lockToken));
}

export function deliveryTagToLockToken(tag: Buffer | string): string | undefined {
  const bytes = typeof tag === "string" ? Buffer.from(tag) : tag;
  return bytes.length === 16 ? rhea.uuid_to_string(swapGuidByteOrder(bytes)) : undefined;
}

/** A lock token as found in `$management` requests (a big-endian UUID, or its string form). */
export function lockTokenFromRequest(value: unknown): string | undefined {
  if (typeof value === "string") return value.toLowerCase();
  if (isBuffer(value) && value.length === 16) return rhea.uuid_to_string(value);
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Typed values

const TICKS_AT_UNIX_EPOCH = 621_355_968_000_000_000n;
const LONG_TYPECODE = 0x81;
const TIMESTAMP_TYPECODE = 0x83;

function longBytes(value: bigint): Buffer {
  const buffer = Buffer.alloc(8);
  buffer.writeBigInt64BE(value);
  return buffer;
}

/** A .NET `DateTime` tick count (100 ns since 0001-01-01) as an AMQP long. */
export function dotNetTicks(ms: number): Typed {
  return rhea.types.wrap_long(longBytes(BigInt(Math.round(ms)) * 10_000n + TICKS_AT_UNIX_EPOCH));
}

export function wrapLong(value: number): Typed {
  return rhea.types.wrap_long(value);
}

export function wrapInt(value: number): Typed {
  return rhea.types.wrap_int(value);
}

/** An AMQP array of longs (what the SDK expects for `sequence-numbers`). */
export function longArray(values: number[]): Typed {
  return rhea.types.wrap_array(
    values.map((v) => longBytes(BigInt(v))),
    LONG_TYPECODE,
    undefined,
  );
}

export function timestampArray(values: Date[]): Typed {
  return rhea.types.wrap_array(
    values.map((d) => d.getTime()),
    TIMESTAMP_TYPECODE,
    undefined,
  );
}

/** Reads an AMQP long that rhea decoded either as a number or (when large) as 8 bytes. */
export function readLong(value: unknown): number | undefined {
  if (typeof value === "number") return value;
  if (isBuffer(value) && value.length === 8) return Number(value.readBigInt64BE());
  return undefined;
}
