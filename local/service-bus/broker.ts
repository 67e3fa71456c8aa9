/**
 * Queue state of the Service Bus emulator, independent of AMQP: messages, peek-locks, sessions,
 * scheduling, dead-lettering and duplicate detection. The AMQP layer turns link events into
 * calls here and reports errors as {@link BrokerError} conditions.
 */
import { randomUUID } from "node:crypto";

import { messageIdText, newLockToken, type WireMessage } from "./encoding.js";
import type { QueueDefinition } from "./definitions.js";

/** AMQP error conditions Service Bus uses (the SDK maps them to its error codes). */
export const Condition = {
  notFound: "amqp:not-found",
  notAllowed: "amqp:not-allowed",
  notImplemented: "amqp:not-implemented",
  argumentError: "com.microsoft:argument-error",
  messageLockLost: "com.microsoft:message-lock-lost",
  sessionLockLost: "com.microsoft:session-lock-lost",
  sessionCannotBeLocked: "com.microsoft:session-cannot-be-locked",
  messageNotFound: "com.microsoft:message-not-found",
} as const;
export type Condition = (typeof Condition)[keyof typeof Condition];

export class BrokerError extends Error {
  constructor(
    readonly condition: Condition,
    description: string,
  ) {
    super(description);
    this.name = "BrokerError";
  }
}

export const DEAD_LETTER_SUFFIX = "/$DeadLetterQueue";
const SCHEDULED_ENQUEUE_TIME = "x-opt-scheduled-enqueue-time";

/** A pending timer of a `BrokerClock`. */
export interface Cancel {
  cancel(): void;
}

/**
 * Time as the broker sees it: lock and session expiry, scheduled enqueue times and the
 * duplicate-detection window all follow this clock, so a test can move time on instead of
 * waiting for it.
 */
export interface BrokerClock {
  now(): number;
  /** Runs `fn` once `ms` have passed on this clock. */
  after(ms: number, fn: () => void): Cancel;
}

export const realBrokerClock: BrokerClock = {
  now: () => Date.now(),
  after(ms, fn) {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

export interface MessageLock {
  readonly token: string;
  until: number;
  readonly holder: Consumer;
  timer: Cancel | undefined;
}

export interface BrokeredMessage {
  readonly sequenceNumber: number;
  readonly messageId: string;
  readonly sessionId: string | undefined;
  /** When the message became (or becomes, if scheduled) available. */
  enqueuedAt: number;
  /** Deliveries that ended without settlement (the AMQP header `delivery-count`). */
  deliveryCount: number;
  /** Properties, application properties, body and the sender's annotations. */
  wire: WireMessage;
  /** Set while the message waits for its scheduled enqueue time. */
  scheduledFor: number | undefined;
  lock: MessageLock | undefined;
  /** Set on messages in a dead-letter queue: the queue they came from. */
  deadLetterSource: string | undefined;
  scheduleTimer: Cancel | undefined;
}

/** A receiving link as the broker sees it. */
export interface Consumer {
  /** Set for a session receiver: it only gets that session's messages. */
  readonly sessionId: string | undefined;
  /** Receive-and-delete: messages are removed when handed out and never locked. */
  readonly receiveAndDelete: boolean;
  /** How many more messages the consumer can take now. */
  credit(): number;
  deliver(message: BrokeredMessage, lockToken: string | undefined, lockedUntil: number): void;
  /** The session lock expired: the consumer must stop receiving. */
  sessionLost(): void;
}

interface SessionLock {
  readonly sessionId: string;
  readonly holder: Consumer;
  until: number;
  timer: Cancel | undefined;
}

export interface EntityOptions {
  /** Entity path: the queue name, or `<queue>/$DeadLetterQueue`. */
  path: string;
  lockDurationMs: number;
  /** Deliveries before a message is dead-lettered; Infinity for a dead-letter queue. */
  maxDeliveryCount: number;
  requiresSession: boolean;
  /** 0 disables duplicate detection. */
  duplicateDetectionWindowMs: number;
  deadLetterQueue: QueueEntity | undefined;
  clock: BrokerClock;
}

export interface EntityCounts {
  /** Messages that can be received now (not locked, not scheduled). */
  available: number;
  locked: number;
  scheduled: number;
  total: number;
}

export interface SettleOptions {
  propertiesToModify?: Record<string, unknown>;
}

export interface DeadLetterOptions extends SettleOptions {
  reason?: string;
  description?: string;
}

export class QueueEntity {
  readonly path: string;
  /** Messages by sequence number; insertion order is sequence order. */
  private readonly messages = new Map<number, BrokeredMessage>();
  private readonly locks = new Map<string, BrokeredMessage>();
  private readonly sessions = new Map<string, SessionLock>();
  private readonly consumers = new Set<Consumer>();
  /** Message ids seen within the duplicate-detection window, with their expiry. */
  private readonly seenMessageIds = new Map<string, number>();
  private lastSequenceNumber = 0;

  constructor(private readonly options: EntityOptions) {
    this.path = options.path;
  }

  private now(): number {
    return this.options.clock.now();
  }

  private timer(ms: number, fn: () => void): Cancel {
    return this.options.clock.after(ms, fn);
  }

  get requiresSession(): boolean {
    return this.options.requiresSession;
  }

  get isDeadLetterQueue(): boolean {
    return this.options.deadLetterQueue === undefined;
  }

  // -------------------------------------------------------------------------------------------
  // Sending

  /**
   * Accepts messages from a sender, all or none. Returns the assigned sequence numbers; a
   * duplicate (same message id within the detection window) is acknowledged but dropped.
   */
  send(wires: WireMessage[], scheduleAt?: Date): number[] {
    for (const wire of wires) this.validate(wire);
    return wires.map((wire) => this.accept(wire, scheduleAt));
  }

  private validate(wire: WireMessage): void {
    if (this.options.requiresSession && !wire.group_id) {
      throw new BrokerError(
        Condition.notAllowed,
        `The SessionId was not set on a message, and it cannot be sent to the entity '${this.path}'. ` +
          "Entities that have session support enabled can only receive messages that have the SessionId set to a valid value.",
      );
    }
  }

  private accept(incoming: WireMessage, scheduleAt: Date | undefined): number {
    const now = this.now();
    const sequenceNumber = ++this.lastSequenceNumber;
    const wire: WireMessage = { ...incoming };
    const messageId = messageIdText(wire.message_id) ?? randomUUID().replaceAll("-", "");
    wire.message_id ??= messageId;
    if (this.isDuplicate(messageId, now)) return sequenceNumber;

    const annotated = wire.message_annotations?.[SCHEDULED_ENQUEUE_TIME];
    const scheduledTime = scheduleAt ?? (annotated instanceof Date ? annotated : undefined);
    const scheduledFor =
      scheduledTime !== undefined && scheduledTime.getTime() > now
        ? scheduledTime.getTime()
        : undefined;
    const message: BrokeredMessage = {
      sequenceNumber,
      messageId,
      sessionId: wire.group_id || undefined,
      enqueuedAt: scheduledFor ?? now,
      deliveryCount: 0,
      wire,
      scheduledFor,
      lock: undefined,
      deadLetterSource: undefined,
      scheduleTimer: undefined,
    };
    this.messages.set(sequenceNumber, message);
    if (scheduledFor !== undefined) {
      message.scheduleTimer = this.timer(scheduledFor - now, () => {
        this.activate(message);
      });
    } else {
      this.pump();
    }
    return sequenceNumber;
  }

  private isDuplicate(messageId: string, now: number): boolean {
    const window = this.options.duplicateDetectionWindowMs;
    if (window <= 0) return false;
    for (const [id, expiry] of this.seenMessageIds) {
      if (expiry > now) break; // entries are in insertion (and so expiry) order
      this.seenMessageIds.delete(id);
    }
    if (this.seenMessageIds.has(messageId)) return true;
    this.seenMessageIds.set(messageId, now + window);
    return false;
  }

  private activate(message: BrokeredMessage): void {
    message.scheduleTimer = undefined;
    message.scheduledFor = undefined;
    message.enqueuedAt = this.now();
    this.pump();
  }

  cancelScheduled(sequenceNumber: number): void {
    const message = this.messages.get(sequenceNumber);
    if (message?.scheduledFor === undefined) {
      throw new BrokerError(
        Condition.messageNotFound,
        `The scheduled message with sequence number ${sequenceNumber} was not found in '${this.path}'.`,
      );
    }
    message.scheduleTimer?.cancel();
    this.messages.delete(sequenceNumber);
  }

  /** A message moved here from the queue's main entity. */
  private acceptDeadLetter(
    message: BrokeredMessage,
    source: string,
    options: DeadLetterOptions,
  ): void {
    const sequenceNumber = ++this.lastSequenceNumber;
    const properties: Record<string, unknown> = {
      ...message.wire.application_properties,
      ...options.propertiesToModify,
    };
    if (options.reason !== undefined) properties.DeadLetterReason = options.reason;
    if (options.description !== undefined)
      properties.DeadLetterErrorDescription = options.description;
    this.messages.set(sequenceNumber, {
      ...message,
      sequenceNumber,
      enqueuedAt: this.now(),
      wire: { ...message.wire, application_properties: properties },
      lock: undefined,
      scheduledFor: undefined,
      scheduleTimer: undefined,
      deadLetterSource: source,
    });
    this.pump();
  }

  // -------------------------------------------------------------------------------------------
  // Receiving

  addConsumer(consumer: Consumer): void {
    this.consumers.add(consumer);
    this.pump();
  }

  /**
   * Detaches a consumer. A session receiver gives its session back (its unsettled messages
   * count a failed delivery); plain peek-locks stay until they expire, as in Service Bus.
   */
  removeConsumer(consumer: Consumer): void {
    if (!this.consumers.delete(consumer)) return;
    const session =
      consumer.sessionId === undefined ? undefined : this.sessions.get(consumer.sessionId);
    if (session?.holder === consumer) this.releaseSession(session);
  }

  /** Hands out available messages to consumers with credit, round-robin. */
  pump(): void {
    let progress = true;
    while (progress) {
      progress = false;
      for (const consumer of this.consumers) {
        if (consumer.credit() <= 0) continue;
        const message = this.nextAvailable(consumer.sessionId);
        if (!message) continue;
        this.handOut(message, consumer);
        progress = true;
      }
    }
  }

  private isAvailable(message: BrokeredMessage): boolean {
    return message.scheduledFor === undefined && message.lock === undefined;
  }

  private nextAvailable(sessionId: string | undefined): BrokeredMessage | undefined {
    for (const message of this.messages.values()) {
      if (!this.isAvailable(message)) continue;
      if (sessionId !== undefined && message.sessionId !== sessionId) continue;
      return message;
    }
    return undefined;
  }

  private handOut(message: BrokeredMessage, consumer: Consumer): void {
    if (consumer.receiveAndDelete) {
      this.messages.delete(message.sequenceNumber);
      consumer.deliver(message, undefined, this.now());
      return;
    }
    const session =
      consumer.sessionId === undefined ? undefined : this.sessions.get(consumer.sessionId);
    const token = newLockToken();
    const lock: MessageLock = {
      token,
      until: session ? session.until : this.now() + this.options.lockDurationMs,
      holder: consumer,
      timer: undefined,
    };
    // Inside a session the session lock covers the message; elsewhere the message lock expires.
    if (!session)
      lock.timer = this.timer(this.options.lockDurationMs, () => {
        this.expireLock(message, token);
      });
    message.lock = lock;
    this.locks.set(token, message);
    consumer.deliver(message, token, lock.until);
  }

  private expireLock(message: BrokeredMessage, token: string): void {
    if (message.lock?.token === token) this.unlock(message, {});
  }

  /** Ends a lock without settlement: the delivery counts, and may exhaust the queue's limit. */
  private unlock(message: BrokeredMessage, options: SettleOptions): void {
    const lock = message.lock;
    if (lock) {
      lock.timer?.cancel();
      this.locks.delete(lock.token);
      message.lock = undefined;
    }
    if (options.propertiesToModify) {
      message.wire = {
        ...message.wire,
        application_properties: {
          ...message.wire.application_properties,
          ...options.propertiesToModify,
        },
      };
    }
    message.deliveryCount++;
    if (message.deliveryCount >= this.options.maxDeliveryCount) {
      this.moveToDeadLetter(message, {
        reason: "MaxDeliveryCountExceeded",
        description: `Message could not be consumed after ${this.options.maxDeliveryCount} delivery attempts.`,
      });
    } else {
      this.pump();
    }
  }

  private moveToDeadLetter(message: BrokeredMessage, options: DeadLetterOptions): void {
    this.messages.delete(message.sequenceNumber);
    this.options.deadLetterQueue?.acceptDeadLetter(message, this.path, options);
    this.pump();
  }

  // -------------------------------------------------------------------------------------------
  // Settlement (by lock token)

  private locked(token: string): BrokeredMessage {
    const message = this.locks.get(token);
    if (!message?.lock || message.lock.until < this.now()) {
      if (this.options.requiresSession) {
        throw new BrokerError(
          Condition.sessionLockLost,
          `The session lock was lost or the lock token '${token}' is not valid for '${this.path}'.`,
        );
      }
      throw new BrokerError(
        Condition.messageLockLost,
        `The lock supplied is invalid. Either the lock expired, or the message has already been removed from '${this.path}'. Lock token: ${token}.`,
      );
    }
    return message;
  }

  complete(token: string): void {
    const message = this.locked(token);
    message.lock?.timer?.cancel();
    this.locks.delete(token);
    this.messages.delete(message.sequenceNumber);
  }

  abandon(token: string, options: SettleOptions = {}): void {
    this.unlock(this.locked(token), options);
  }

  deadLetter(token: string, options: DeadLetterOptions = {}): void {
    const message = this.locked(token);
    message.lock?.timer?.cancel();
    this.locks.delete(token);
    message.lock = undefined;
    this.moveToDeadLetter(message, options);
  }

  /** Renews a message lock; returns the new expiry (ms since the epoch). */
  renewLock(token: string): number {
    const message = this.locked(token);
    const lock = message.lock!;
    if (
      message.sessionId !== undefined &&
      this.sessions.get(message.sessionId)?.holder === lock.holder
    ) {
      return lock.until; // a session message is covered by its session's lock
    }
    lock.timer?.cancel();
    lock.until = this.now() + this.options.lockDurationMs;
    lock.timer = this.timer(this.options.lockDurationMs, () => {
      this.expireLock(message, token);
    });
    return lock.until;
  }

  // -------------------------------------------------------------------------------------------
  // Sessions

  /**
   * Locks a session and attaches the consumer `create` makes for it: the requested session, or
   * (without `sessionId`) the first session that has available messages and is not locked.
   */
  acceptSession<C extends Consumer>(
    sessionId: string | undefined,
    create: (sessionId: string, lockedUntil: number) => C,
  ): C {
    const now = this.now();
    const chosen = sessionId ?? this.nextFreeSession();
    if (chosen === undefined) {
      throw new BrokerError(
        Condition.sessionCannotBeLocked,
        `No unlocked sessions with messages are available in '${this.path}'.`,
      );
    }
    const existing = this.sessions.get(chosen);
    if (existing && existing.until >= now) {
      throw new BrokerError(
        Condition.sessionCannotBeLocked,
        `The requested session '${chosen}' cannot be accepted. It may be locked by another receiver.`,
      );
    }
    if (existing) this.releaseSession(existing);
    const until = now + this.options.lockDurationMs;
    const holder = create(chosen, until);
    const lock: SessionLock = { sessionId: chosen, holder, until, timer: undefined };
    lock.timer = this.timer(this.options.lockDurationMs, () => {
      this.expireSession(lock);
    });
    this.sessions.set(chosen, lock);
    this.addConsumer(holder);
    return holder;
  }

  private nextFreeSession(): string | undefined {
    for (const message of this.messages.values()) {
      if (message.sessionId === undefined || !this.isAvailable(message)) continue;
      if (!this.sessions.has(message.sessionId)) return message.sessionId;
    }
    return undefined;
  }

  renewSessionLock(sessionId: string): number {
    const lock = this.sessions.get(sessionId);
    if (!lock || lock.until < this.now()) {
      throw new BrokerError(
        Condition.sessionLockLost,
        `The session lock has expired on the session with id ${sessionId}.`,
      );
    }
    lock.timer?.cancel();
    lock.until = this.now() + this.options.lockDurationMs;
    lock.timer = this.timer(this.options.lockDurationMs, () => {
      this.expireSession(lock);
    });
    for (const message of this.locks.values()) {
      if (message.sessionId === sessionId && message.lock?.holder === lock.holder)
        message.lock.until = lock.until;
    }
    return lock.until;
  }

  private expireSession(lock: SessionLock): void {
    if (this.sessions.get(lock.sessionId) !== lock) return;
    this.releaseSession(lock);
    this.consumers.delete(lock.holder);
    lock.holder.sessionLost();
  }

  private releaseSession(lock: SessionLock): void {
    lock.timer?.cancel();
    this.sessions.delete(lock.sessionId);
    const held = [...this.locks.values()].filter(
      (m) => m.sessionId === lock.sessionId && m.lock?.holder === lock.holder,
    );
    for (const message of held) this.unlock(message, {});
    this.pump();
  }

  // -------------------------------------------------------------------------------------------
  // Inspection

  /** Messages from `fromSequenceNumber` on, locked or scheduled ones included (as Service Bus peeks). */
  peek(fromSequenceNumber: number, count: number, sessionId?: string): BrokeredMessage[] {
    const result: BrokeredMessage[] = [];
    for (const message of this.messages.values()) {
      if (result.length >= count) break;
      if (message.sequenceNumber < fromSequenceNumber) continue;
      if (sessionId !== undefined && message.sessionId !== sessionId) continue;
      result.push(message);
    }
    return result;
  }

  counts(): EntityCounts {
    let available = 0;
    let locked = 0;
    let scheduled = 0;
    for (const message of this.messages.values()) {
      if (message.scheduledFor !== undefined) scheduled++;
      else if (message.lock) locked++;
      else available++;
    }
    return { available, locked, scheduled, total: this.messages.size };
  }

  close(): void {
    for (const message of this.messages.values()) {
      message.scheduleTimer?.cancel();
      message.lock?.timer?.cancel();
    }
    for (const session of this.sessions.values()) session.timer?.cancel();
    this.messages.clear();
    this.locks.clear();
    this.sessions.clear();
    this.consumers.clear();
  }
}

/** All queues of the emulated namespace, each with its dead-letter queue. */
export class Broker {
  private readonly entities = new Map<string, QueueEntity>();

  constructor(definitions: QueueDefinition[], clock: BrokerClock = realBrokerClock) {
    for (const def of definitions) {
      const deadLetterQueue = new QueueEntity({
        path: def.name + DEAD_LETTER_SUFFIX,
        lockDurationMs: def.lockDurationMs,
        maxDeliveryCount: Number.POSITIVE_INFINITY,
        requiresSession: false,
        duplicateDetectionWindowMs: 0,
        deadLetterQueue: undefined,
        clock,
      });
      const queue = new QueueEntity({
        path: def.name,
        lockDurationMs: def.lockDurationMs,
        maxDeliveryCount: def.maxDeliveryCount,
        requiresSession: def.requiresSession,
        duplicateDetectionWindowMs: def.requiresDuplicateDetection
          ? def.duplicateDetectionWindowMs
          : 0,
        deadLetterQueue,
        clock,
      });
      this.entities.set(queue.path.toLowerCase(), queue);
      this.entities.set(deadLetterQueue.path.toLowerCase(), deadLetterQueue);
    }
  }

  /** Finds an entity by path (`queue` or `queue/$DeadLetterQueue`, case-insensitive). */
  entity(path: string): QueueEntity | undefined {
    return this.entities.get(path.replace(/^\/+|\/+$/g, "").toLowerCase());
  }

  close(): void {
    for (const entity of this.entities.values()) entity.close();
  }
}
