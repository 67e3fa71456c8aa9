/**
 * How brokered messages look on the wire: the Service Bus message annotations the SDK reads
 * (sequence number, enqueued time, locked-until, state, dead-letter source).
 */
import { encodeMessage, wrapInt, wrapLong, type WireMessage } from "./encoding.js";
import type { BrokeredMessage } from "./broker.js";

export const Annotation = {
  sequenceNumber: "x-opt-sequence-number",
  enqueuedTime: "x-opt-enqueued-time",
  lockedUntil: "x-opt-locked-until",
  messageState: "x-opt-message-state",
  deadLetterSource: "x-opt-deadletter-source",
} as const;

/** `x-opt-message-state` values. */
const MessageState = { active: 0, scheduled: 2 } as const;

/** The message as delivered on a receive link (`lockedUntil` set) or returned by a peek. */
export function toWire(message: BrokeredMessage, lockedUntil?: number): WireMessage {
  const annotations: Record<string, unknown> = {
    ...message.wire.message_annotations,
    [Annotation.sequenceNumber]: wrapLong(message.sequenceNumber),
    [Annotation.enqueuedTime]: new Date(message.enqueuedAt),
    [Annotation.messageState]: wrapInt(
      message.scheduledFor === undefined ? MessageState.active : MessageState.scheduled,
    ),
  };
  if (lockedUntil !== undefined) annotations[Annotation.lockedUntil] = new Date(lockedUntil);
  if (message.deadLetterSource !== undefined) {
    annotations[Annotation.deadLetterSource] = message.deadLetterSource;
  }
  return {
    ...message.wire,
    delivery_count: message.deliveryCount,
    message_annotations: annotations,
  };
}

export function encodeForDelivery(message: BrokeredMessage, lockedUntil?: number): Buffer {
  return encodeMessage(toWire(message, lockedUntil));
}
