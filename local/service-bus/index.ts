/**
 * Local Azure Service Bus emulator: an AMQP 1.0 endpoint the real `@azure/service-bus` client
 * talks to (connection string with `UseDevelopmentEmulator=true`), with the queues declared in
 * `bicep/queues.json`.
 */
import { Broker, DEAD_LETTER_SUFFIX, type BrokerClock, type EntityCounts } from "./broker.js";
import { loadQueueDefinitions, type QueueDefinition } from "./definitions.js";
import { ServiceBusServer, type LogFn } from "./server.js";

export { loadQueueDefinitions, parseIsoDuration, type QueueDefinition } from "./definitions.js";
export type { BrokerClock, Cancel, EntityCounts } from "./broker.js";

export interface QueueCounts extends EntityCounts {
  /** Messages in the queue's dead-letter queue. */
  deadLettered: number;
}

export interface ServiceBusEmulator {
  port: number;
  connectionString: string;
  /** Message counts of a queue (throws for an unknown queue). */
  counts(queueName: string): QueueCounts;
  /** The declared queues. */
  queues(): QueueDefinition[];
  close(): Promise<void>;
}

export interface ServiceBusEmulatorOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default: the queues of `bicep/queues.json`. */
  queues?: QueueDefinition[];
  log?: LogFn;
  /** Default: real time. Tests pass a clock they move on (locks, schedules, windows follow it). */
  clock?: BrokerClock;
}

export function emulatorConnectionString(host: string, port: number): string {
  return `Endpoint=sb://${host}:${port};SharedAccessKeyName=local;SharedAccessKey=local;UseDevelopmentEmulator=true`;
}

export async function startServiceBusEmulator(
  opts: ServiceBusEmulatorOptions = {},
): Promise<ServiceBusEmulator> {
  const host = opts.host ?? "127.0.0.1";
  const queues = opts.queues ?? loadQueueDefinitions();
  const broker = new Broker(queues, opts.clock);
  const server = new ServiceBusServer(broker, opts.log);
  const port = await server.start(host, opts.port ?? 0);
  let closed: Promise<void> | undefined;
  return {
    port,
    connectionString: emulatorConnectionString(host, port),
    queues: () => queues.map((q) => ({ ...q })),
    counts(queueName) {
      const queue = broker.entity(queueName);
      const dlq = broker.entity(queueName + DEAD_LETTER_SUFFIX);
      if (!queue || !dlq) throw new Error(`Unknown queue '${queueName}'`);
      return { ...queue.counts(), deadLettered: dlq.counts().total };
    },
    close() {
      closed ??= server.close().finally(() => {
        broker.close();
      });
      return closed;
    },
  };
}
