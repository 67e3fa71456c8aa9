import { ServiceBusClient, type ServiceBusReceivedMessage } from "@azure/service-bus";
import { describe, expect, it } from "vitest";

import { startServiceBusEmulator } from "../../local/service-bus/index.js";
import { runQueueTrigger, type QueueHandler } from "../../local/service-bus/runner.js";
import { delay, eventually, queue, startBus } from "./helpers.js";

type Call = ServiceBusReceivedMessage;

describe("runQueueTrigger", () => {
  it("when stop() is called, then running handlers finish, nothing more is received and no handles are left", async () => {
    // First in this file, so no earlier test's connections are still winding down.
    const handlesBefore = process.getActiveResourcesInfo().filter((r) => r !== "TTYWrap");
    const emulator = await startServiceBusEmulator({
      port: 0,
      queues: [queue("plain"), queue("sessions", { requiresSession: true })],
    });
    const client = new ServiceBusClient(emulator.connectionString);
    let handled = 0;
    let finishedSlowly = false;
    const handler: QueueHandler = async ({ body }) => {
      handled++;
      if (body === "slow") {
        await delay(300);
        finishedSlowly = true;
      }
    };
    const plain = runQueueTrigger({
      client,
      functionName: "plainWorker",
      queueName: "plain",
      isSessionsEnabled: false,
      handler,
    });
    const sessions = runQueueTrigger({
      client,
      functionName: "sessionWorker",
      queueName: "sessions",
      isSessionsEnabled: true,
      maxConcurrentSessions: 2,
      handler,
    });
    await client.createSender("plain").sendMessages({ body: "slow" });
    await eventually(() => handled === 1);

    await Promise.all([plain.stop(), sessions.stop()]);
    expect(finishedSlowly).toBe(true);
    expect(emulator.counts("plain").total).toBe(0); // completed before the receiver closed

    await client.createSender("plain").sendMessages({ body: "after stop" });
    await client.createSender("sessions").sendMessages({ body: "after stop", sessionId: "S" });
    // The broker hands a message out as it arrives to any receiver with credit: still available
    // once the send is acknowledged means nothing receives any more.
    expect(emulator.counts("plain").available).toBe(1);
    expect(handled).toBe(1);
    expect(emulator.counts("sessions").available).toBe(1);

    await client.close();
    await emulator.close();
    // Sockets close a moment after `close()` resolves: wait for that, not for a set time.
    const handlesAfter = () =>
      process
        .getActiveResourcesInfo()
        .filter((r) => r !== "TTYWrap")
        .sort();
    await eventually(() => JSON.stringify(handlesAfter()) === JSON.stringify(handlesBefore.sort()));
    expect(handlesAfter()).toEqual(handlesBefore.sort());
  });

  it("when the handler throws once and then succeeds, then the message is handled twice and completed", async () => {
    const { client, emulator } = await startBus([queue("tasks")]);
    const calls: Call[] = [];
    const handler: QueueHandler = async (message) => {
      calls.push(message);
      await Promise.resolve();
      if (calls.length === 1) throw new Error("transient");
    };
    const logs: string[] = [];
    const trigger = runQueueTrigger({
      client,
      functionName: "taskWorker",
      queueName: "tasks",
      isSessionsEnabled: false,
      handler,
      log: (level, msg) => logs.push(`${level}: ${msg}`),
    });
    await client.createSender("tasks").sendMessages({
      body: { task: 42 },
      messageId: "t-1",
      applicationProperties: { origin: "test" },
    });

    await eventually(() => calls.length === 2 && emulator.counts("tasks").total === 0);
    await trigger.stop();

    expect(calls.map((c) => c.body)).toEqual([{ task: 42 }, { task: 42 }]);
    const [first, second] = calls;
    expect(first).toMatchObject({
      messageId: "t-1",
      deliveryCount: 0,
      applicationProperties: { origin: "test" },
    });
    expect(first?.lockToken).not.toBe(second?.lockToken);
    expect(second?.deliveryCount).toBe(1);
    expect(emulator.counts("tasks")).toMatchObject({ total: 0, deadLettered: 0 });
    expect(logs.some((l) => l.startsWith("warn:") && l.includes("transient"))).toBe(true);
  });

  it("when the handler always throws, then the message is dead-lettered after maxDeliveryCount attempts", async () => {
    const { client, emulator } = await startBus([queue("doomed", { maxDeliveryCount: 3 })]);
    let calls = 0;
    const trigger = runQueueTrigger({
      client,
      functionName: "doomedWorker",
      queueName: "doomed",
      isSessionsEnabled: false,
      handler: async () => {
        calls++;
        await Promise.resolve();
        throw new Error("always");
      },
    });
    await client.createSender("doomed").sendMessages({ body: "x" });
    await eventually(() => emulator.counts("doomed").deadLettered === 1);
    await trigger.stop();
    expect(calls).toBe(3);
  });

  it("when two sessions have messages, then they are processed concurrently and each session in order", async () => {
    const { client, emulator } = await startBus([queue("ordered", { requiresSession: true })]);
    const sender = client.createSender("ordered");
    const messages = [1, 2, 3, 4].flatMap((n) => [
      { body: { n }, sessionId: "A" },
      { body: { n }, sessionId: "B" },
    ]);
    await sender.sendMessages(messages);

    const seen: Record<string, number[]> = { A: [], B: [] };
    const active = new Set<string>();
    let maxActive = 0;
    let failedOnce = false;
    // The first message of each session waits until the other session is being handled too:
    // the two sessions provably run at once, however the scheduler interleaves them.
    let bothActive!: () => void;
    const overlap = new Promise<void>((resolve) => (bothActive = resolve));
    const trigger = runQueueTrigger({
      client,
      functionName: "orderedWorker",
      queueName: "ordered",
      isSessionsEnabled: true,
      handler: async ({ body, sessionId = "" }) => {
        const { n } = body as { n: number };
        active.add(sessionId);
        maxActive = Math.max(maxActive, active.size);
        if (active.size === 2) bothActive();
        if (n === 1) await overlap;
        active.delete(sessionId);
        if (sessionId === "A" && n === 2 && !failedOnce) {
          failedOnce = true;
          throw new Error("retry me"); // a retry must not let a3 overtake a2
        }
        seen[sessionId]!.push(n);
      },
    });

    await eventually(() => emulator.counts("ordered").total === 0);
    await trigger.stop();
    expect(seen).toEqual({ A: [1, 2, 3, 4], B: [1, 2, 3, 4] });
    expect(maxActive).toBe(2);
  });

  it("when only one session may be processed at a time, then an idle session is released so the next one is taken", async () => {
    const { client, emulator } = await startBus([queue("serial", { requiresSession: true })]);
    await client.createSender("serial").sendMessages([
      { body: "x1", sessionId: "X" },
      { body: "y1", sessionId: "Y" },
    ]);
    const order: unknown[] = [];
    const trigger = runQueueTrigger({
      client,
      functionName: "serialWorker",
      queueName: "serial",
      isSessionsEnabled: true,
      maxConcurrentSessions: 1,
      handler: async ({ body }) => {
        order.push(body);
        await Promise.resolve();
      },
    });
    await eventually(() => emulator.counts("serial").total === 0);
    await trigger.stop();
    expect(order).toEqual(["x1", "y1"]);
  });
});
