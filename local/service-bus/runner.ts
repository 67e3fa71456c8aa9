/**
 * Drives queue-triggered functions the way the Azure Functions host's Service Bus extension does
 * with `autoCompleteMessages: true`: peek-lock receive, one invocation per message (the caller
 * turns the message into the extension's trigger data), complete on success, abandon on a failed
 * invocation (Service Bus redelivers until `maxDeliveryCount`, then
 * dead-letters). Session queues are processed one message at a time per session, in order,
 * with up to `maxConcurrentSessions` sessions at once.
 */
import { setMaxListeners } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";

import {
  isServiceBusError,
  type ServiceBusClient,
  type ServiceBusReceivedMessage,
  type ServiceBusReceiver,
  type ServiceBusSessionReceiver,
} from "@azure/service-bus";

/** Invokes the function for one received message; a rejection is a failed invocation. */
export type QueueHandler = (message: ServiceBusReceivedMessage) => Promise<unknown>;

export type RunnerLog = (level: "info" | "warn" | "error", msg: string) => void;

export interface QueueTriggerOptions {
  client: ServiceBusClient;
  functionName: string;
  queueName: string;
  isSessionsEnabled: boolean;
  /** Concurrent handler calls on a queue without sessions (default 16). */
  maxConcurrentCalls?: number;
  /** Sessions processed at once (default 8). */
  maxConcurrentSessions?: number;
  /** A session idle this long is released (default SESSION_IDLE_MS; host.json sessionIdleTimeout). */
  sessionIdleTimeoutMs?: number;
  handler: QueueHandler;
  log?: RunnerLog;
}

export interface QueueTrigger {
  /** Stops receiving, waits for running handlers and closes the receivers. */
  stop(): Promise<void>;
}

/** A session with no message for this long is released so other sessions get a turn. */
export const SESSION_IDLE_MS = 1000;
/** Pause before looking for a free session again when none was available. */
const SESSION_POLL_MS = 250;

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && err.name === "AbortError";
}

/** Runs handlers for received messages and settles them, keeping track of those running. */
class Invoker {
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly opts: QueueTriggerOptions,
    private readonly log: RunnerLog,
  ) {}

  /** Invokes the handler for one message, then completes or abandons it. Never rejects. */
  invoke(receiver: ServiceBusReceiver, message: ServiceBusReceivedMessage): Promise<void> {
    const work = this.run(receiver, message);
    this.running.add(work);
    return work.finally(() => this.running.delete(work));
  }

  /** Resolves when every invocation started so far has settled its message. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.running]);
  }

  private async run(
    receiver: ServiceBusReceiver,
    message: ServiceBusReceivedMessage,
  ): Promise<void> {
    try {
      await this.opts.handler(message);
    } catch (err) {
      // The host counts the current delivery; the AMQP header counts earlier ones.
      const attempt = (message.deliveryCount ?? 0) + 1;
      this.log(
        "warn",
        `invocation for message ${String(message.messageId)} failed (delivery ${attempt}): ${describe(err)}`,
      );
      await receiver.abandonMessage(message).catch((e: unknown) => {
        this.log("warn", `abandon failed: ${describe(e)}`);
      });
      return;
    }
    await receiver.completeMessage(message).catch((e: unknown) => {
      this.log("warn", `complete failed: ${describe(e)}`);
    });
  }
}

/** A queue without sessions: one streaming receiver, up to `maxConcurrentCalls` at once. */
function runPlainQueue(
  opts: QueueTriggerOptions,
  invoker: Invoker,
  log: RunnerLog,
  stopping: AbortSignal,
) {
  const receiver = opts.client.createReceiver(opts.queueName, { receiveMode: "peekLock" });
  const subscription = receiver.subscribe(
    {
      processMessage: (message) => invoker.invoke(receiver, message),
      processError: (args) => {
        if (!stopping.aborted)
          log("warn", `receive error (${args.errorSource}): ${describe(args.error)}`);
        return Promise.resolve();
      },
    },
    { autoCompleteMessages: false, maxConcurrentCalls: opts.maxConcurrentCalls ?? 16 },
  );
  return async (): Promise<void> => {
    await subscription.close(); // no new messages; the link stays open to settle running ones
    await invoker.idle();
    await receiver.close();
  };
}

/** A session queue: `maxConcurrentSessions` slots, each holding one session at a time. */
function runSessionQueue(
  opts: QueueTriggerOptions,
  invoker: Invoker,
  log: RunnerLog,
  stopping: AbortSignal,
) {
  const stopped = (): boolean => stopping.aborted;

  /** Handles the session's messages one by one until it stays idle. */
  const drainSession = async (receiver: ServiceBusSessionReceiver): Promise<void> => {
    while (!stopped()) {
      const [message] = await receiver.receiveMessages(1, {
        maxWaitTimeInMs: opts.sessionIdleTimeoutMs ?? SESSION_IDLE_MS,
        abortSignal: stopping,
      });
      if (!message) return;
      await invoker.invoke(receiver, message);
    }
  };

  const acceptSession = async (): Promise<ServiceBusSessionReceiver | undefined> => {
    try {
      return await opts.client.acceptNextSession(opts.queueName, {
        receiveMode: "peekLock",
        abortSignal: stopping,
      });
    } catch (err) {
      if (stopped() || isAbort(err)) return undefined;
      const code = isServiceBusError(err) ? err.code : undefined;
      if (code !== "SessionCannotBeLocked" && code !== "ServiceTimeout") {
        log("warn", `accepting a session failed: ${describe(err)}`);
      }
      await sleep(SESSION_POLL_MS, undefined, { signal: stopping }).catch(() => undefined);
      return undefined;
    }
  };

  const slot = async (): Promise<void> => {
    while (!stopped()) {
      const receiver = await acceptSession();
      if (!receiver) continue;
      try {
        await drainSession(receiver);
      } catch (err) {
        if (!stopped() && !isAbort(err)) {
          log("warn", `session '${receiver.sessionId}' failed: ${describe(err)}`);
        }
      } finally {
        await receiver.close().catch((e: unknown) => {
          log("warn", `closing session '${receiver.sessionId}' failed: ${describe(e)}`);
        });
      }
    }
  };

  const slots = Array.from({ length: opts.maxConcurrentSessions ?? 8 }, slot);
  return async (): Promise<void> => {
    await Promise.allSettled(slots);
  };
}

export function runQueueTrigger(opts: QueueTriggerOptions): QueueTrigger {
  const log: RunnerLog = opts.log ?? (() => undefined);
  const stopping = new AbortController();
  // Every receive of every session slot listens on this one signal.
  setMaxListeners(0, stopping.signal);
  const invoker = new Invoker(opts, log);
  const shutdown = opts.isSessionsEnabled
    ? runSessionQueue(opts, invoker, log, stopping.signal)
    : runPlainQueue(opts, invoker, log, stopping.signal);

  let stopped: Promise<void> | undefined;
  return {
    stop() {
      stopped ??= (async () => {
        stopping.abort();
        await shutdown();
      })();
      return stopped;
    },
  };
}
