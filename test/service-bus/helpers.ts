import { ServiceBusClient } from "@azure/service-bus";
import { onTestFinished } from "vitest";

import {
  startServiceBusEmulator,
  type BrokerClock,
  type Cancel,
  type QueueDefinition,
  type ServiceBusEmulator,
} from "../../local/service-bus/index.js";

/**
 * The broker's time, moved by the test: locks expire, scheduled messages appear and duplicate
 * windows close exactly when the test says, however slowly the machine runs.
 */
export class ManualBrokerClock implements BrokerClock {
  private ms = Date.now();
  private timers: Array<{ at: number; fn: () => void; cancelled: boolean }> = [];
  now = (): number => this.ms;
  after(ms: number, fn: () => void): Cancel {
    const timer = { at: this.ms + Math.max(0, ms), fn, cancelled: false };
    this.timers.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }
  /** Moves time on by `ms`, running the timers that fall due, in order. */
  advance(ms: number): void {
    const end = this.ms + ms;
    for (;;) {
      const due = this.timers
        .filter((t) => !t.cancelled && t.at <= end)
        .sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.ms = Math.max(this.ms, due.at);
      due.cancelled = true;
      due.fn();
    }
    this.timers = this.timers.filter((t) => !t.cancelled);
    this.ms = end;
  }
}

export function queue(name: string, overrides: Partial<QueueDefinition> = {}): QueueDefinition {
  return {
    name,
    requiresSession: false,
    requiresDuplicateDetection: false,
    duplicateDetectionWindowMs: 60_000,
    lockDurationMs: 30_000,
    maxDeliveryCount: 10,
    ...overrides,
  };
}

export interface Bus {
  emulator: ServiceBusEmulator;
  client: ServiceBusClient;
  /** Another client on its own AMQP connection (e.g. a second process). */
  newClient(): ServiceBusClient;
}

/** Starts an emulator with `queues` and a client; both are closed when the test finishes. */
export async function startBus(
  queues: QueueDefinition[],
  opts: { clock?: BrokerClock } = {},
): Promise<Bus> {
  const emulator = await startServiceBusEmulator({
    port: 0,
    queues,
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
  const clients: ServiceBusClient[] = [];
  const newClient = (): ServiceBusClient => {
    const client = new ServiceBusClient(emulator.connectionString, {
      retryOptions: { maxRetries: 0, timeoutInMs: 10_000 },
    });
    clients.push(client);
    return client;
  };
  const client = newClient();
  onTestFinished(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await emulator.close();
  });
  return { emulator, client, newClient };
}

/** Resolves with the error a promise rejects with (fails if it resolves). */
export async function rejectionOf(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error("Expected the promise to reject");
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `check` until it returns true. The bound only ends a test that is stuck: it is generous,
 * so a loaded machine that is merely slow never trips it.
 */
export async function eventually(check: () => boolean, timeoutMs = 25_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("Condition not met in time");
    await delay(20);
  }
}
