/**
 * Service Bus senders. One client per process; one sender per queue, opened on first use.
 * Locally the connection string points at the AMQP emulator; in Azure the function identity
 * sends with the "Azure Service Bus Data Sender" role.
 */
import type { TokenCredential } from "@azure/core-auth";
import type { ServiceBusClient, ServiceBusMessage, ServiceBusSender } from "@azure/service-bus";

export type QueueKey = "provisioning" | "gateway";

export interface OutboundMessage {
  body: unknown;
  messageId: string;
  sessionId: string;
  subject?: string;
  applicationProperties?: Record<string, string | number | boolean>;
}

export interface Bus {
  send(queue: QueueKey, messages: OutboundMessage | OutboundMessage[]): Promise<void>;
  /** Enqueues for later delivery (`scheduledEnqueueTimeUtc`); never blocks the caller. */
  schedule(queue: QueueKey, message: OutboundMessage, at: Date): Promise<void>;
  client(): Promise<ServiceBusClient>;
  /** Opens the sender link (health check). */
  ping(queue: QueueKey): Promise<void>;
  close(): Promise<void>;
}

export interface BusOptions {
  connectionString?: string | undefined;
  fullyQualifiedNamespace?: string | undefined;
  credential?: () => Promise<TokenCredential>;
  queueNames: Record<QueueKey, string>;
}

function toSdk(m: OutboundMessage): ServiceBusMessage {
  return {
    body: m.body,
    messageId: m.messageId,
    sessionId: m.sessionId,
    contentType: "application/json",
    ...(m.subject ? { subject: m.subject } : {}),
    ...(m.applicationProperties ? { applicationProperties: m.applicationProperties } : {}),
  };
}

export function createBus(opts: BusOptions): Bus {
  let clientPromise: Promise<ServiceBusClient> | undefined;
  const senders = new Map<QueueKey, ServiceBusSender>();

  function client(): Promise<ServiceBusClient> {
    clientPromise ??= (async () => {
      // Loaded on first use: most HTTP functions never send a message.
      const { ServiceBusClient } = await import("@azure/service-bus");
      if (opts.connectionString) return new ServiceBusClient(opts.connectionString);
      if (!opts.fullyQualifiedNamespace || !opts.credential) {
        throw new Error("Service Bus is not configured");
      }
      return new ServiceBusClient(opts.fullyQualifiedNamespace, await opts.credential());
    })();
    return clientPromise;
  }
  async function sender(queue: QueueKey): Promise<ServiceBusSender> {
    let s = senders.get(queue);
    if (!s) {
      s = (await client()).createSender(opts.queueNames[queue]);
      senders.set(queue, s);
    }
    return s;
  }

  return {
    client,
    async send(queue, messages) {
      const list = Array.isArray(messages) ? messages : [messages];
      if (list.length === 0) return;
      await (await sender(queue)).sendMessages(list.map(toSdk));
    },
    async schedule(queue, message, at) {
      await (await sender(queue)).scheduleMessages(toSdk(message), at);
    },
    async ping(queue) {
      // Creating a batch opens the sender link: the namespace answers and the queue exists.
      await (await sender(queue)).createMessageBatch();
    },
    async close() {
      const all = [...senders.values()];
      senders.clear();
      await Promise.allSettled(all.map((s) => s.close()));
      if (clientPromise) {
        const c = await clientPromise.catch(() => undefined);
        clientPromise = undefined;
        await c?.close();
      }
    },
  };
}
