/**
 * The AMQP 1.0 listener of the emulator and typed access to the rhea link state it needs
 * (attach fields, dispositions, link credit). rhea's typings are loose and keep some of this
 * internal; those casts stay in this file.
 */
import type { Socket } from "node:net";

import rhea from "rhea";
import type { AmqpError, Connection, Delivery, Receiver, Sender, Session } from "rhea";

import { isRecord, toWireMessage, type WireMessage } from "./encoding.js";

export type { AmqpError, Connection, Delivery, Receiver, Sender, Session };
export type Link = Sender | Receiver;

export type OutcomeKind = "accepted" | "released" | "rejected" | "modified";
const OUTCOME_KINDS: OutcomeKind[] = ["accepted", "released", "rejected", "modified"];

/** rhea exposes the outcome constructors at runtime but not in its typings. */
type OutcomeFactory = Record<
  OutcomeKind,
  (fields?: { error?: AmqpError }) => { described(): unknown }
>;
const outcomes = rhea.message as unknown as OutcomeFactory;

// ---------------------------------------------------------------------------------------------
// Dispositions

/**
 * Settles a delivery with the outcome the peer proposed, or as rejected with `error` (which the
 * peer surfaces, e.g. as a lost lock).
 */
export function settle(delivery: Delivery, outcome: OutcomeKind, error?: AmqpError): void {
  const state = error ? outcomes.rejected({ error }) : outcomes[outcome]();
  delivery.update(true, state.described());
  // Once the broker settles, the delivery is over: the Service Bus client does not answer a
  // settled disposition with one of its own. Without this rhea keeps every such delivery in the
  // session's outgoing buffer (2,048 slots), and the session stalls when it is full.
  (delivery as unknown as { remote_settled: boolean }).remote_settled = true;
}

/** The disposition state the peer sent for an outgoing delivery. */
export interface RemoteOutcome {
  error?: AmqpError;
  undeliverable_here?: boolean;
  message_annotations?: Record<string, unknown>;
}

export function remoteOutcome(delivery: Delivery): RemoteOutcome {
  const state: unknown = delivery.remote_state;
  return isRecord(state) ? state : {};
}

// ---------------------------------------------------------------------------------------------
// Attach

/** What the peer asked for when it attached a link. */
export interface RemoteAttach {
  sourceAddress: string | undefined;
  targetAddress: string | undefined;
  /** Source filter entries (e.g. the session filter), as decoded. */
  filter: Record<string, unknown> | undefined;
  /** 1 = the peer wants pre-settled deliveries (receive-and-delete). */
  sndSettleMode: number;
  rcvSettleMode: number;
}

function addressOf(terminus: unknown): string | undefined {
  return isRecord(terminus) && typeof terminus.address === "string" ? terminus.address : undefined;
}

export function remoteAttach(link: Link): RemoteAttach {
  const source: unknown = link.source;
  return {
    sourceAddress: addressOf(source),
    targetAddress: addressOf(link.target),
    filter: isRecord(source) && isRecord(source.filter) ? source.filter : undefined,
    sndSettleMode: link.snd_settle_mode,
    rcvSettleMode: link.rcv_settle_mode,
  };
}

/** Fields of the emulator's answering attach. Set them from the `*_open` event handler. */
export interface AttachReply {
  source?: { address: string; filter?: Record<string, unknown> };
  target?: { address: string };
  maxMessageSize?: number;
  properties?: Record<string, unknown>;
  sndSettleMode?: number;
  rcvSettleMode?: number;
}

/** The local attach performative of a link (rhea keeps it internal). */
interface LocalAttach {
  max_message_size?: number;
  properties?: Record<string, unknown>;
  snd_settle_mode?: number;
  rcv_settle_mode?: number;
}

/**
 * rhea answers an attach as soon as the peer's arrives; the fields set here, in the open event
 * handler, go out with that answer. A refused link keeps no source/target and is then closed.
 */
export function replyToAttach(link: Link, reply: AttachReply): void {
  const local = (link as unknown as { local: { attach: LocalAttach } }).local.attach;
  if (reply.source) link.set_source(reply.source);
  if (reply.target) link.set_target(reply.target);
  if (reply.maxMessageSize !== undefined) local.max_message_size = reply.maxMessageSize;
  if (reply.properties) local.properties = reply.properties;
  if (reply.sndSettleMode !== undefined) local.snd_settle_mode = reply.sndSettleMode;
  if (reply.rcvSettleMode !== undefined) local.rcv_settle_mode = reply.rcvSettleMode;
}

// ---------------------------------------------------------------------------------------------
// Credit

/**
 * Link-credit bookkeeping for a sending link. rhea only decrements `credit` when a transfer is
 * actually written, so deliveries queued in the same tick are counted here.
 */
export class CreditTracker {
  private issued = 0;

  constructor(private readonly sender: Sender) {}

  /** Transfers the peer has allowed that are not yet used. */
  available(): number {
    return Math.max(0, this.limit() - this.issued);
  }

  /** Records one transfer handed to rhea. */
  used(): void {
    this.issued++;
  }

  /** Answers a drain request: the remaining credit is consumed and the peer told so. */
  drain(): void {
    this.issued = Math.max(this.issued, this.limit());
    this.sender.set_drained(true);
  }

  /** The delivery count up to which the peer granted credit (rhea keeps both parts internal). */
  private limit(): number {
    const state = this.sender as unknown as { credit: number; delivery_count: number };
    return state.credit + state.delivery_count;
  }
}

// ---------------------------------------------------------------------------------------------
// Listener

export interface TransportHandlers {
  /** The peer attached a receiving link: the emulator sends on it. */
  onSenderOpen(sender: Sender): void;
  /** The peer attached a sending link: the emulator receives on it. */
  onReceiverOpen(receiver: Receiver): void;
  /** A transfer arrived. Format-0 messages arrive decoded; other formats as raw bytes. */
  onMessage(
    receiver: Receiver,
    delivery: Delivery,
    message: WireMessage | Buffer,
    format: number,
  ): void;
  /** The peer granted credit on (or asked to drain) a link the emulator sends on. */
  onSenderFlow(sender: Sender, draining: boolean): void;
  /** The peer settled a delivery the emulator sent. */
  onOutcome(sender: Sender, delivery: Delivery, kind: OutcomeKind): void;
  onLinkClosed(link: Link): void;
  onSessionClosed(session: Session): void;
  onConnectionClosed(connection: Connection): void;
}

/** The parts of rhea's event context the emulator reads. */
interface EventContext {
  connection: Connection;
  session?: Session;
  sender?: Sender;
  receiver?: Receiver;
  delivery?: Delivery;
  message?: unknown;
  format?: number;
}

interface SaslServerMechanisms {
  enable_anonymous(): void;
  enable_plain(check: (username: string, password: string) => boolean): void;
}

export interface Listener {
  port: number;
  close(): Promise<void>;
}

/** Starts an AMQP 1.0 listener (SASL ANONYMOUS or PLAIN with any credentials). */
export async function listen(
  host: string,
  port: number,
  handlers: TransportHandlers,
): Promise<Listener> {
  const container = rhea.create_container({
    id: "supafana-service-bus-emulator",
    // Every transfer and disposition is settled explicitly by the emulator.
    autoaccept: false,
    autosettle: false,
    treat_modified_as_released: false,
  });
  const sasl = container.sasl_server_mechanisms as SaslServerMechanisms;
  sasl.enable_anonymous();
  sasl.enable_plain(() => true);

  const on = (event: string, handle: (context: EventContext) => void): void => {
    container.on(event, handle);
  };
  on("sender_open", (c) => {
    if (c.sender) handlers.onSenderOpen(c.sender);
  });
  on("receiver_open", (c) => {
    if (c.receiver) handlers.onReceiverOpen(c.receiver);
  });
  on("message", (c) => {
    if (!c.receiver || !c.delivery) return;
    const format = c.format ?? 0;
    const message =
      format === 0 && isRecord(c.message) ? toWireMessage(c.message) : (c.message as Buffer);
    handlers.onMessage(c.receiver, c.delivery, message, format);
  });
  on("sender_flow", (c) => {
    if (c.sender) handlers.onSenderFlow(c.sender, false);
  });
  on("sender_draining", (c) => {
    if (c.sender) handlers.onSenderFlow(c.sender, true);
  });
  for (const kind of OUTCOME_KINDS) {
    on(kind, (c) => {
      if (c.sender && c.delivery) handlers.onOutcome(c.sender, c.delivery, kind);
    });
  }
  on("sender_close", (c) => {
    if (c.sender) handlers.onLinkClosed(c.sender);
  });
  on("receiver_close", (c) => {
    if (c.receiver) handlers.onLinkClosed(c.receiver);
  });
  on("session_close", (c) => {
    if (c.session) handlers.onSessionClosed(c.session);
  });
  on("connection_close", (c) => {
    handlers.onConnectionClosed(c.connection);
  });
  on("disconnected", (c) => {
    handlers.onConnectionClosed(c.connection);
  });
  // Errors are followed by the matching close event; listening keeps rhea from rethrowing them.
  for (const event of ["sender_error", "receiver_error", "session_error", "connection_error"]) {
    on(event, () => undefined);
  }
  container.on("error", () => undefined);

  // An idle timeout makes rhea drop connections of clients that vanished without closing.
  const server = container.listen({ host, port, idle_time_out: 120_000 });
  const sockets = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
  const address = server.address();
  if (address === null || typeof address === "string") {
    throw new Error("The AMQP listener has no TCP address");
  }
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => {
          resolve();
        });
      }),
  };
}
