/**
 * AMQP link handling of the emulator: which node a link attaches to ($cbs, $management, a queue,
 * a session of a queue, or a dead-letter queue), delivering messages within link credit, and
 * turning dispositions into broker settlements.
 */
import {
  Broker,
  BrokerError,
  Condition,
  type BrokeredMessage,
  type Consumer,
  type DeadLetterOptions,
  type QueueEntity,
} from "./broker.js";
import {
  BATCH_MESSAGE_FORMAT,
  deliveryTagToLockToken,
  dotNetTicks,
  encodeMessage,
  isRecord,
  lockTokenToDeliveryTag,
  newLockToken,
  unpackBatch,
  type WireMessage,
} from "./encoding.js";
import {
  CBS_NODE,
  MANAGEMENT_NODE,
  entityPathOf,
  handleCbsRequest,
  handleManagementRequest,
} from "./management.js";
import { encodeForDelivery } from "./messages.js";
import {
  CreditTracker,
  listen,
  remoteAttach,
  remoteOutcome,
  replyToAttach,
  settle,
  type AmqpError,
  type Connection,
  type Delivery,
  type Link,
  type Listener,
  type OutcomeKind,
  type Receiver,
  type RemoteOutcome,
  type Sender,
} from "./transport.js";

const SESSION_FILTER = "com.microsoft:session-filter";
const LOCKED_UNTIL_UTC = "com.microsoft:locked-until-utc";
/** The largest message a sender may send (what a Standard namespace allows). */
export const MAX_MESSAGE_SIZE = 256 * 1024;

export type LogFn = (level: "info" | "warn" | "error", message: string) => void;

/** A link the peer receives on, attached to a queue, a session of a queue, or a dead-letter queue. */
class LinkConsumer implements Consumer {
  private readonly credits: CreditTracker;

  constructor(
    readonly sender: Sender,
    readonly entity: QueueEntity,
    readonly sessionId: string | undefined,
    readonly receiveAndDelete: boolean,
  ) {
    this.credits = new CreditTracker(sender);
  }

  credit(): number {
    return this.sender.is_open() ? this.credits.available() : 0;
  }

  deliver(message: BrokeredMessage, lockToken: string | undefined, lockedUntil: number): void {
    const tag = lockTokenToDeliveryTag(lockToken ?? newLockToken());
    const payload = encodeForDelivery(message, lockToken === undefined ? undefined : lockedUntil);
    this.sender.send(payload, tag, 0);
    this.credits.used();
  }

  drain(): void {
    this.credits.drain();
  }

  sessionLost(): void {
    this.sender.close({
      condition: Condition.sessionLockLost,
      description: `The session lock has expired on the session with id ${this.sessionId ?? ""}.`,
    });
  }
}

type LinkRole =
  | { kind: "consumer"; consumer: LinkConsumer }
  /** Replies to requests whose reply-to is the link's target address or, lacking one, its name. */
  | { kind: "reply"; address: string; sender: Sender }
  | { kind: "cbs" }
  | { kind: "management"; entity: QueueEntity }
  | { kind: "producer"; entity: QueueEntity };

function errorOf(err: unknown): AmqpError {
  if (err instanceof BrokerError) return { condition: err.condition, description: err.message };
  const description = err instanceof Error ? err.message : String(err);
  return { condition: "amqp:internal-error", description };
}

/** Dead-letter options from a `rejected` outcome (the SDK puts them in the error's info). */
function deadLetterOptions(outcome: RemoteOutcome): DeadLetterOptions {
  const { DeadLetterReason, DeadLetterErrorDescription, ...propertiesToModify } = isRecord(
    outcome.error?.info,
  )
    ? outcome.error.info
    : {};
  return {
    reason: typeof DeadLetterReason === "string" ? DeadLetterReason : undefined,
    description:
      typeof DeadLetterErrorDescription === "string" ? DeadLetterErrorDescription : undefined,
    propertiesToModify,
  };
}

function isManagementAddress(address: string): boolean {
  return address === MANAGEMENT_NODE || address.endsWith(`/${MANAGEMENT_NODE}`);
}

export class ServiceBusServer {
  private readonly links = new Map<Link, LinkRole>();
  private listener: Listener | undefined;

  constructor(
    private readonly broker: Broker,
    private readonly log: LogFn = () => undefined,
  ) {}

  async start(host: string, port: number): Promise<number> {
    this.listener = await listen(host, port, {
      onSenderOpen: (sender) => {
        this.guard(() => {
          this.attachSender(sender);
        });
      },
      onReceiverOpen: (receiver) => {
        this.guard(() => {
          this.attachReceiver(receiver);
        });
      },
      onMessage: (receiver, delivery, message, format) => {
        this.guard(() => {
          this.onMessage(receiver, delivery, message, format);
        });
      },
      onSenderFlow: (sender, draining) => {
        this.guard(() => {
          this.onFlow(sender, draining);
        });
      },
      onOutcome: (sender, delivery, kind) => {
        this.guard(() => {
          this.onOutcome(sender, delivery, kind);
        });
      },
      onLinkClosed: (link) => {
        this.guard(() => {
          this.detach(link);
        });
      },
      onSessionClosed: (session) => {
        this.guard(() => {
          this.detachWhere((l) => l.session === session);
        });
      },
      onConnectionClosed: (connection) => {
        this.guard(() => {
          this.detachWhere((l) => l.connection === connection);
        });
      },
    });
    return this.listener.port;
  }

  async close(): Promise<void> {
    this.links.clear();
    await this.listener?.close();
  }

  /** Keeps one bad frame from taking the whole emulator down. */
  private guard(action: () => void): void {
    try {
      action();
    } catch (err) {
      const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
      this.log("error", `service bus emulator: ${text}`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Attach

  /** Refuses a link: the answering attach carries no terminus and is followed by a detach. */
  private refuse(link: Link, condition: string, description: string): void {
    link.close({ condition, description });
  }

  private entityOrRefuse(link: Link, address: string): QueueEntity | undefined {
    const entity = this.broker.entity(entityPathOf(address));
    if (!entity) {
      this.refuse(
        link,
        Condition.notFound,
        `The messaging entity '${address}' could not be found.`,
      );
    }
    return entity;
  }

  /** The peer attached a receiving link: a reply link, a queue receiver or a session receiver. */
  private attachSender(sender: Sender): void {
    const remote = remoteAttach(sender);
    const address = remote.sourceAddress ?? "";
    const echo = { source: { address }, target: { address: remote.targetAddress ?? "" } };

    if (address === CBS_NODE || isManagementAddress(address)) {
      replyToAttach(sender, echo);
      this.links.set(sender, {
        kind: "reply",
        address: remote.targetAddress || sender.name,
        sender,
      });
      return;
    }

    const entity = this.entityOrRefuse(sender, address);
    if (!entity) return;
    const receiveAndDelete = remote.sndSettleMode === 1;
    const reply = {
      ...echo,
      sndSettleMode: remote.sndSettleMode,
      rcvSettleMode: remote.rcvSettleMode,
    };

    if (remote.filter && SESSION_FILTER in remote.filter) {
      if (!entity.requiresSession) {
        this.refuse(
          sender,
          Condition.notAllowed,
          `The entity '${entity.path}' does not require sessions.`,
        );
        return;
      }
      const requested = remote.filter[SESSION_FILTER];
      try {
        entity.acceptSession(
          typeof requested === "string" ? requested : undefined,
          (sessionId, lockedUntil) => {
            replyToAttach(sender, {
              ...reply,
              source: { address, filter: { [SESSION_FILTER]: sessionId } },
              properties: { [LOCKED_UNTIL_UTC]: dotNetTicks(lockedUntil) },
            });
            const consumer = new LinkConsumer(sender, entity, sessionId, receiveAndDelete);
            this.links.set(sender, { kind: "consumer", consumer });
            return consumer;
          },
        );
      } catch (err) {
        const { condition, description } = errorOf(err);
        this.refuse(sender, condition ?? Condition.sessionCannotBeLocked, description ?? "");
      }
      return;
    }

    if (entity.requiresSession) {
      this.refuse(
        sender,
        Condition.notAllowed,
        `It is not possible for an entity that requires sessions to create a non-sessionful message receiver ('${entity.path}').`,
      );
      return;
    }
    replyToAttach(sender, reply);
    const consumer = new LinkConsumer(sender, entity, undefined, receiveAndDelete);
    this.links.set(sender, { kind: "consumer", consumer });
    entity.addConsumer(consumer);
  }

  /** The peer attached a sending link: $cbs or $management requests, or messages for a queue. */
  private attachReceiver(receiver: Receiver): void {
    const remote = remoteAttach(receiver);
    const address = remote.targetAddress ?? "";
    const reply = {
      source: { address: remote.sourceAddress ?? "" },
      target: { address },
      maxMessageSize: MAX_MESSAGE_SIZE,
    };

    if (address === CBS_NODE) {
      replyToAttach(receiver, reply);
      this.links.set(receiver, { kind: "cbs" });
      return;
    }
    const entity = this.entityOrRefuse(receiver, address);
    if (!entity) return;
    if (isManagementAddress(address)) {
      replyToAttach(receiver, reply);
      this.links.set(receiver, { kind: "management", entity });
      return;
    }
    if (entity.isDeadLetterQueue) {
      this.refuse(receiver, Condition.notAllowed, `Messages cannot be sent to '${entity.path}'.`);
      return;
    }
    replyToAttach(receiver, reply);
    this.links.set(receiver, { kind: "producer", entity });
  }

  // -------------------------------------------------------------------------------------------
  // Transfers and dispositions

  private onMessage(
    receiver: Receiver,
    delivery: Delivery,
    message: WireMessage | Buffer,
    format: number,
  ): void {
    const role = this.links.get(receiver);
    try {
      if (role?.kind === "producer") {
        role.entity.send(this.unpack(message, format));
        settle(delivery, "accepted");
        return;
      }
      if ((role?.kind === "cbs" || role?.kind === "management") && !Buffer.isBuffer(message)) {
        const reply =
          role.kind === "cbs"
            ? handleCbsRequest(this.broker, message)
            : handleManagementRequest(role.entity, message);
        settle(delivery, "accepted");
        this.sendReply(receiver.connection, message.reply_to, reply);
        return;
      }
      throw new BrokerError(Condition.notAllowed, "This link does not accept messages.");
    } catch (err) {
      settle(delivery, "rejected", errorOf(err));
    }
  }

  /** The messages of one transfer: a single message, or the contents of a batch envelope. */
  private unpack(message: WireMessage | Buffer, format: number): WireMessage[] {
    if (!Buffer.isBuffer(message)) return [message];
    if (format === BATCH_MESSAGE_FORMAT) return unpackBatch(message);
    throw new BrokerError(Condition.notImplemented, `Message format ${format} is not supported.`);
  }

  private sendReply(connection: Connection, address: string | undefined, reply: WireMessage): void {
    for (const role of this.links.values()) {
      if (
        role.kind === "reply" &&
        role.address === address &&
        role.sender.connection === connection
      ) {
        role.sender.send(encodeMessage(reply), undefined, 0);
        return;
      }
    }
    this.log("warn", `service bus emulator: no reply link '${address ?? ""}' for a request`);
  }

  private onFlow(sender: Sender, draining: boolean): void {
    const role = this.links.get(sender);
    if (role?.kind !== "consumer") return;
    role.consumer.entity.pump();
    if (draining) role.consumer.drain();
  }

  private onOutcome(sender: Sender, delivery: Delivery, kind: OutcomeKind): void {
    const role = this.links.get(sender);
    if (role?.kind !== "consumer" || role.consumer.receiveAndDelete) {
      // Replies ($cbs, $management) and receive-and-delete transfers have nothing to settle in
      // the broker, but the link must still settle them: an unsettled delivery holds a slot of
      // the session window until the connection stalls.
      settle(delivery, kind);
      return;
    }
    const entity = role.consumer.entity;
    try {
      const token = deliveryTagToLockToken(delivery.tag);
      if (token === undefined)
        throw new BrokerError(Condition.messageLockLost, "Unknown delivery tag.");
      const outcome = remoteOutcome(delivery);
      switch (kind) {
        case "accepted":
          entity.complete(token);
          break;
        case "released":
          entity.abandon(token);
          break;
        case "modified":
          if (outcome.undeliverable_here) {
            throw new BrokerError(
              Condition.notImplemented,
              "The emulator does not defer messages.",
            );
          }
          entity.abandon(token, { propertiesToModify: outcome.message_annotations });
          break;
        case "rejected":
          entity.deadLetter(token, deadLetterOptions(outcome));
          break;
      }
      settle(delivery, kind);
    } catch (err) {
      settle(delivery, kind, errorOf(err));
    }
  }

  // -------------------------------------------------------------------------------------------
  // Detach

  private detach(link: Link): void {
    const role = this.links.get(link);
    this.links.delete(link);
    if (role?.kind === "consumer") role.consumer.entity.removeConsumer(role.consumer);
  }

  private detachWhere(predicate: (link: Link) => boolean): void {
    for (const link of [...this.links.keys()]) if (predicate(link)) this.detach(link);
  }
}
