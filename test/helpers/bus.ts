/** A Service Bus stand-in for tests that play the queues themselves. */
import type { Bus, OutboundMessage, QueueKey } from "../../lib/bus.js";
import type { Clock } from "../../lib/services.js";

/**
 * A `Bus` that hands every message to `push`, with the delay a scheduled one asked for (by the
 * services' clock, so a test that moves the clock moves the delays). It has no real client.
 */
export function recordingBus(
  clock: Clock,
  push: (queue: QueueKey, m: OutboundMessage, delayMs: number) => void,
): Bus {
  return {
    send: (queue, messages) => {
      for (const m of Array.isArray(messages) ? messages : [messages]) push(queue, m, 0);
      return Promise.resolve();
    },
    schedule: (queue, m, at) => {
      push(queue, m, Math.max(0, at.getTime() - clock.now().getTime()));
      return Promise.resolve();
    },
    client: () => Promise.reject(new Error("this bus has no Service Bus client")),
    ping: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
}
