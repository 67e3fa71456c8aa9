import type { ServiceBusReceivedMessage } from "@azure/service-bus";
import { describe, expect, it } from "vitest";

import { eventually, ManualBrokerClock, queue, rejectionOf, startBus } from "./helpers.js";

const bodies = (messages: ServiceBusReceivedMessage[]): unknown[] =>
  messages.map((m): unknown => m.body);

describe("service bus emulator: sending and receiving", () => {
  it("when a single message is sent, then it is received peek-locked with Service Bus system properties and complete removes it", async () => {
    const clock = new ManualBrokerClock();
    const { client, emulator } = await startBus([queue("orders", { lockDurationMs: 20_000 })], {
      clock,
    });
    const sender = client.createSender("orders");
    const before = clock.now();
    await sender.sendMessages({ body: { id: 1 }, applicationProperties: { kind: "order", n: 7 } });
    await sender.sendMessages({ body: "second", messageId: "my-id" });

    const receiver = client.createReceiver("orders");
    const [first, second] = await receiver.receiveMessages(2, { maxWaitTimeInMs: 2000 });

    expect(first?.body).toEqual({ id: 1 });
    expect(first?.applicationProperties).toEqual({ kind: "order", n: 7 });
    expect(first?.sequenceNumber?.toNumber()).toBe(1);
    expect(first?.deliveryCount).toBe(0);
    expect(first?.messageId).toMatch(/^[0-9a-f]{32}$/); // assigned by the broker
    expect(first?.lockToken).toMatch(/^[0-9a-f-]{36}$/);
    expect(first?.enqueuedTimeUtc?.getTime()).toBe(before);
    expect(first?.lockedUntilUtc?.getTime()).toBe(before + 20_000);
    expect(second?.messageId).toBe("my-id");
    expect(second?.sequenceNumber?.toNumber()).toBe(2);
    expect(emulator.counts("orders")).toMatchObject({ locked: 2, available: 0 });

    await receiver.completeMessage(first!);
    await receiver.completeMessage(second!);
    expect(emulator.counts("orders").total).toBe(0);
  });

  it("when messages are sent as an array and as a message batch, then each arrives on its own, in order", async () => {
    const { client } = await startBus([queue("batch")]);
    const sender = client.createSender("batch");
    await sender.sendMessages([{ body: "a1" }, { body: "a2", applicationProperties: { p: "x" } }]);
    const batch = await sender.createMessageBatch();
    expect(batch.maxSizeInBytes).toBe(256 * 1024);
    expect(batch.tryAddMessage({ body: "b1" })).toBe(true);
    expect(batch.tryAddMessage({ body: { b: 2 } })).toBe(true);
    await sender.sendMessages(batch);

    const receiver = client.createReceiver("batch", { receiveMode: "receiveAndDelete" });
    const received = await receiver.receiveMessages(4, { maxWaitTimeInMs: 2000 });
    expect(bodies(received)).toEqual(["a1", "a2", "b1", { b: 2 }]);
    expect(received[1]?.applicationProperties).toEqual({ p: "x" });
    expect(received.map((m) => m.sequenceNumber?.toNumber())).toEqual([1, 2, 3, 4]);
  });

  it("when the queue is empty, then receiveMessages returns no messages after maxWaitTime", async () => {
    const { client } = await startBus([queue("empty")]);
    const receiver = client.createReceiver("empty");
    const started = Date.now();
    const received = await receiver.receiveMessages(5, { maxWaitTimeInMs: 400 });
    const elapsed = Date.now() - started;
    expect(received).toEqual([]);
    expect(elapsed).toBeGreaterThanOrEqual(380);
    expect(elapsed).toBeLessThan(2500);
    // The drained link still works afterwards.
    await client.createSender("empty").sendMessages({ body: "late" });
    const later = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2000 });
    expect(bodies(later)).toEqual(["late"]);
  });

  it("when a receiver subscribes, then messages stream to the handler and are auto-completed", async () => {
    const { client, emulator } = await startBus([queue("stream")]);
    const sender = client.createSender("stream");
    await sender.sendMessages([{ body: 1 }, { body: 2 }, { body: 3 }]);
    const seen: unknown[] = [];
    const receiver = client.createReceiver("stream");
    const subscription = receiver.subscribe({
      processMessage: async (m) => {
        seen.push(m.body);
        await Promise.resolve();
      },
      processError: async () => Promise.resolve(),
    });
    await eventually(() => seen.length === 3);
    await sender.sendMessages({ body: 4 });
    await eventually(() => seen.length === 4 && emulator.counts("stream").total === 0);
    await subscription.close();
    expect(seen).toEqual([1, 2, 3, 4]);
  });

  it("when the queue does not exist, then sending and receiving fail with MessagingEntityNotFound", async () => {
    const { client } = await startBus([queue("exists")]);
    const sendError = await rejectionOf(client.createSender("missing").sendMessages({ body: 1 }));
    expect(sendError.code).toBe("MessagingEntityNotFound");
    const receiveError = await rejectionOf(
      client.createReceiver("missing").receiveMessages(1, { maxWaitTimeInMs: 500 }),
    );
    expect(receiveError.code).toBe("MessagingEntityNotFound");
  });
});

describe("service bus emulator: settlement", () => {
  it("when a message is abandoned with properties to modify, then it is redelivered with deliveryCount + 1 and the new properties", async () => {
    const { client } = await startBus([queue("retry")]);
    await client.createSender("retry").sendMessages({ body: "x", applicationProperties: { a: 1 } });
    const receiver = client.createReceiver("retry");
    const [first] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2000 });
    await receiver.abandonMessage(first!, { attempt: "one", a: 2 });
    const [again] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2000 });
    expect(again?.sequenceNumber?.toNumber()).toBe(first?.sequenceNumber?.toNumber());
    expect(again?.deliveryCount).toBe(1);
    expect(again?.applicationProperties).toEqual({ a: 2, attempt: "one" });
    expect(again?.lockToken).not.toBe(first?.lockToken);
    await receiver.completeMessage(again!);
  });

  it("when a message is dead-lettered with a reason, then the dead-letter queue holds it with reason, description and source, and peek lists it", async () => {
    const { client, emulator } = await startBus([queue("work")]);
    await client
      .createSender("work")
      .sendMessages({ body: { job: 9 }, applicationProperties: { tenant: "t1" } });
    const receiver = client.createReceiver("work");
    const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2000 });
    await receiver.deadLetterMessage(message!, {
      deadLetterReason: "Poison",
      deadLetterErrorDescription: "bad job",
    });
    expect(emulator.counts("work")).toMatchObject({ total: 0, deadLettered: 1 });

    const peeked = await client
      .createReceiver("work", { subQueueType: "deadLetter" })
      .peekMessages(10);
    expect(peeked).toHaveLength(1);
    expect(peeked[0]?.body).toEqual({ job: 9 });
    expect(peeked[0]?.deadLetterReason).toBe("Poison");

    const dlq = client.createReceiver("work", { subQueueType: "deadLetter" });
    const [dead] = await dlq.receiveMessages(1, { maxWaitTimeInMs: 2000 });
    expect(dead?.body).toEqual({ job: 9 });
    expect(dead?.deadLetterReason).toBe("Poison");
    expect(dead?.deadLetterErrorDescription).toBe("bad job");
    expect(dead?.deadLetterSource).toBe("work");
    expect(dead?.applicationProperties).toMatchObject({ tenant: "t1" });
    await dlq.completeMessage(dead!);
    expect(emulator.counts("work").deadLettered).toBe(0);
  });

  it("when a message is abandoned maxDeliveryCount times, then it is dead-lettered with MaxDeliveryCountExceeded", async () => {
    const { client, emulator } = await startBus([queue("flaky", { maxDeliveryCount: 3 })]);
    await client.createSender("flaky").sendMessages({ body: "poison" });
    const receiver = client.createReceiver("flaky");
    const counts: number[] = [];
    for (let i = 0; i < 3; i++) {
      const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2000 });
      counts.push(m!.deliveryCount!);
      await receiver.abandonMessage(m!);
    }
    expect(counts).toEqual([0, 1, 2]);
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).toEqual([]);
    expect(emulator.counts("flaky")).toMatchObject({ total: 0, deadLettered: 1 });
    const [dead] = await client
      .createReceiver("flaky", { subQueueType: "deadLetter" })
      .receiveMessages(1, { maxWaitTimeInMs: 2000 });
    expect(dead?.deadLetterReason).toBe("MaxDeliveryCountExceeded");
    expect(dead?.body).toBe("poison");
  });

  it("when a lock expires, then the message is redelivered with deliveryCount + 1 and completing the stale copy fails with MessageLockLost", async () => {
    const clock = new ManualBrokerClock();
    const { client } = await startBus([queue("short", { lockDurationMs: 400 })], { clock });
    await client.createSender("short").sendMessages({ body: "slow" });
    const receiver = client.createReceiver("short", { maxAutoLockRenewalDurationInMs: 0 });
    const [first] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2000 });
    expect(first?.deliveryCount).toBe(0);
    clock.advance(399);
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 200 })).toEqual([]);
    clock.advance(1);
    const [again] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 3000 });
    expect(again?.body).toBe("slow");
    expect(again?.deliveryCount).toBe(1);
    const error = await rejectionOf(receiver.completeMessage(first!));
    expect(error.code).toBe("MessageLockLost");
    await receiver.completeMessage(again!);
  });

  it("when a message lock is renewed, then lockedUntil moves forward and the message is not redelivered at the original expiry", async () => {
    const clock = new ManualBrokerClock();
    const { client, emulator } = await startBus([queue("renew", { lockDurationMs: 1000 })], {
      clock,
    });
    await client.createSender("renew").sendMessages({ body: "long job" });
    const receiver = client.createReceiver("renew", { maxAutoLockRenewalDurationInMs: 0 });
    const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2000 });
    const firstUntil = message!.lockedUntilUtc!.getTime();
    clock.advance(600);
    const renewed = await receiver.renewMessageLock(message!);
    expect(renewed.getTime()).toBe(firstUntil + 600);
    clock.advance(600); // past the original expiry, within the renewed one
    expect(emulator.counts("renew")).toMatchObject({ locked: 1, available: 0 });
    await receiver.completeMessage(message!);
    expect(emulator.counts("renew").total).toBe(0);
  });

  it("when a receiver takes a message and its client dies without settling, then the message is redelivered after the lock expires with deliveryCount + 1", async () => {
    const clock = new ManualBrokerClock();
    const bus = await startBus([queue("crash", { lockDurationMs: 500 })], { clock });
    await bus.client.createSender("crash").sendMessages({ body: "job" });
    const doomed = bus.newClient();
    const [taken] = await doomed
      .createReceiver("crash", { maxAutoLockRenewalDurationInMs: 0 })
      .receiveMessages(1, { maxWaitTimeInMs: 2000 });
    expect(taken?.body).toBe("job");
    const lockedUntil = taken!.lockedUntilUtc!.getTime();
    await doomed.close(); // the process dies: nothing is settled

    // The lock outlives the connection, as in Service Bus.
    expect(bus.emulator.counts("crash")).toMatchObject({ locked: 1 });
    const survivor = bus.client.createReceiver("crash");
    clock.advance(lockedUntil - clock.now());
    const [redelivered] = await survivor.receiveMessages(1, { maxWaitTimeInMs: 3000 });
    expect(redelivered?.body).toBe("job");
    expect(redelivered?.deliveryCount).toBe(1);
    await survivor.completeMessage(redelivered!);
  });
});

describe("service bus emulator: $management", () => {
  it("when a message is scheduled, then it is not delivered before its time and is delivered on time", async () => {
    const clock = new ManualBrokerClock();
    const { client, emulator } = await startBus([queue("later")], { clock });
    const sender = client.createSender("later");
    const at = new Date(clock.now() + 1000);
    const [seq] = await sender.scheduleMessages({ body: "tick" }, at);
    expect(seq?.toNumber()).toBe(1);
    expect(emulator.counts("later")).toMatchObject({ scheduled: 1, available: 0 });

    const receiver = client.createReceiver("later");
    const [peeked] = await receiver.peekMessages(1);
    expect(peeked?.state).toBe("scheduled");
    clock.advance(999);
    expect(await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).toEqual([]);
    clock.advance(1);
    const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 3000 });
    expect(message?.body).toBe("tick");
    expect(message?.enqueuedTimeUtc?.getTime()).toBe(at.getTime());
    await receiver.completeMessage(message!);
  });

  it("when a scheduled message is cancelled, then it is never delivered", async () => {
    const clock = new ManualBrokerClock();
    const { client, emulator } = await startBus([queue("cancel")], { clock });
    const sender = client.createSender("cancel");
    const at = new Date(clock.now() + 300);
    const seqs = await sender.scheduleMessages([{ body: "drop" }, { body: "keep" }], at);
    expect(seqs.map((s) => s.toNumber())).toEqual([1, 2]);
    await sender.cancelScheduledMessages(seqs[0]!);
    expect(emulator.counts("cancel")).toMatchObject({ scheduled: 1 });
    clock.advance(300); // the scheduled time
    expect(emulator.counts("cancel")).toMatchObject({ scheduled: 0, available: 1, total: 1 });
    const receiver = client.createReceiver("cancel", { receiveMode: "receiveAndDelete" });
    const received = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2000 });
    expect(bodies(received)).toEqual(["keep"]);
    const error = await rejectionOf(sender.cancelScheduledMessages(seqs[0]!));
    expect(error.code).toBe("MessageNotFound");
  });

  it("when a queue is peeked, then messages are listed in order without being locked, and the next peek continues after them", async () => {
    const { client, emulator } = await startBus([queue("browse")]);
    await client.createSender("browse").sendMessages([{ body: 1 }, { body: 2 }, { body: 3 }]);
    const receiver = client.createReceiver("browse");
    const [locked] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2000 });
    const browser = client.createReceiver("browse");
    const page1 = await browser.peekMessages(2);
    const page2 = await browser.peekMessages(2);
    const page3 = await browser.peekMessages(2);
    expect(bodies(page1)).toEqual([1, 2]); // the locked message is peeked too
    expect(bodies(page2)).toEqual([3]);
    expect(page3).toEqual([]);
    expect(page1[0]?.lockToken).toBeUndefined();
    expect(emulator.counts("browse")).toMatchObject({ locked: 1, available: 2 });
    await receiver.completeMessage(locked!);
  });
});

describe("service bus emulator: sessions", () => {
  const sessionQueue = (lockDurationMs = 30_000) =>
    queue("jobs", { requiresSession: true, lockDurationMs });

  it("when messages of two sessions are sent, then acceptSession delivers one session's messages in order and acceptNextSession picks the other", async () => {
    const { client } = await startBus([sessionQueue()]);
    const sender = client.createSender("jobs");
    await sender.sendMessages([
      { body: "a1", sessionId: "A" },
      { body: "b1", sessionId: "B" },
      { body: "a2", sessionId: "A" },
      { body: "b2", sessionId: "B" },
      { body: "a3", sessionId: "A" },
    ]);
    const a = await client.acceptSession("jobs", "A");
    expect(a.sessionId).toBe("A");
    expect(a.sessionLockedUntilUtc.getTime()).toBeGreaterThan(Date.now() + 25_000);
    const fromA = await a.receiveMessages(3, { maxWaitTimeInMs: 2000 });
    expect(bodies(fromA)).toEqual(["a1", "a2", "a3"]);
    expect(fromA.every((m) => m.sessionId === "A")).toBe(true);

    const next = await client.acceptNextSession("jobs");
    expect(next.sessionId).toBe("B");
    const fromB = await next.receiveMessages(2, { maxWaitTimeInMs: 2000 });
    expect(bodies(fromB)).toEqual(["b1", "b2"]);
    for (const m of fromA) await a.completeMessage(m);
    for (const m of fromB) await next.completeMessage(m);
  });

  it("when a session is locked by a receiver, then accepting it again or accepting a next session fails with SessionCannotBeLocked", async () => {
    const { client } = await startBus([sessionQueue()]);
    await client.createSender("jobs").sendMessages({ body: "only", sessionId: "S" });
    const holder = await client.acceptNextSession("jobs");
    expect(holder.sessionId).toBe("S");
    const sameSession = await rejectionOf(client.acceptSession("jobs", "S"));
    expect(sameSession.code).toBe("SessionCannotBeLocked");
    const anySession = await rejectionOf(client.acceptNextSession("jobs"));
    expect(anySession.code).toBe("SessionCannotBeLocked");

    await holder.close();
    const afterRelease = await client.acceptSession("jobs", "S");
    const [m] = await afterRelease.receiveMessages(1, { maxWaitTimeInMs: 2000 });
    expect(m?.body).toBe("only");
    await afterRelease.completeMessage(m!);
  });

  it("when a session lock expires, then another receiver can accept the session and gets the unsettled message with deliveryCount + 1", async () => {
    const clock = new ManualBrokerClock();
    const bus = await startBus([sessionQueue(500)], { clock });
    await bus.client.createSender("jobs").sendMessages({ body: "held", sessionId: "E" });
    const first = await bus
      .newClient()
      .acceptSession("jobs", "E", { maxAutoLockRenewalDurationInMs: 0 });
    const [held] = await first.receiveMessages(1, { maxWaitTimeInMs: 2000 });
    expect(held?.lockedUntilUtc?.getTime()).toBe(first.sessionLockedUntilUtc.getTime());
    expect((await rejectionOf(bus.client.acceptSession("jobs", "E"))).code).toBe(
      "SessionCannotBeLocked",
    );

    clock.advance(500);
    const second = await bus.client.acceptSession("jobs", "E");
    const [again] = await second.receiveMessages(1, { maxWaitTimeInMs: 2000 });
    expect(again?.body).toBe("held");
    expect(again?.deliveryCount).toBe(1);
    const lost = await rejectionOf(first.completeMessage(held!));
    expect(lost.code).toBe("SessionLockLost");
    await second.completeMessage(again!);
  });

  it("when a session lock is renewed, then sessionLockedUntilUtc moves forward and the session stays locked", async () => {
    const clock = new ManualBrokerClock();
    const { client } = await startBus([sessionQueue(1000)], { clock });
    await client.createSender("jobs").sendMessages({ body: "x", sessionId: "R" });
    const receiver = await client.acceptSession("jobs", "R", { maxAutoLockRenewalDurationInMs: 0 });
    const before = receiver.sessionLockedUntilUtc.getTime();
    clock.advance(600);
    await receiver.renewSessionLock();
    expect(receiver.sessionLockedUntilUtc.getTime()).toBe(before + 600);
    clock.advance(600); // past the original expiry
    expect((await rejectionOf(client.acceptSession("jobs", "R"))).code).toBe(
      "SessionCannotBeLocked",
    );
    const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2000 });
    await receiver.completeMessage(m!);
  });

  it("when a message without sessionId is sent to a session queue, then the send is rejected", async () => {
    const { client, emulator } = await startBus([sessionQueue()]);
    const error = await rejectionOf(client.createSender("jobs").sendMessages({ body: "orphan" }));
    expect(error.message).toMatch(/SessionId was not set/);
    expect(emulator.counts("jobs").total).toBe(0);
  });

  it("when a session queue is peeked for one session, then only that session's messages are listed", async () => {
    const { client } = await startBus([sessionQueue()]);
    await client.createSender("jobs").sendMessages([
      { body: 1, sessionId: "P" },
      { body: 2, sessionId: "Q" },
      { body: 3, sessionId: "P" },
    ]);
    const receiver = await client.acceptSession("jobs", "P");
    expect(bodies(await receiver.peekMessages(10))).toEqual([1, 3]);
  });
});

describe("service bus emulator: duplicate detection", () => {
  it("when the same messageId is sent twice within the window, then the second copy is accepted but dropped, scheduled ones included", async () => {
    const { client, emulator } = await startBus([
      queue("dedupe", { requiresDuplicateDetection: true, duplicateDetectionWindowMs: 60_000 }),
      queue("plain"),
    ]);
    const sender = client.createSender("dedupe");
    await sender.sendMessages({ body: "first", messageId: "m-1" });
    await sender.sendMessages({ body: "second", messageId: "m-1" });
    await sender.scheduleMessages(
      { body: "scheduled", messageId: "m-1" },
      new Date(Date.now() + 60_000),
    );
    await sender.scheduleMessages({ body: "s1", messageId: "m-2" }, new Date(Date.now() + 60_000));
    await sender.sendMessages({ body: "s2", messageId: "m-2" });
    expect(emulator.counts("dedupe")).toMatchObject({ total: 2, available: 1, scheduled: 1 });
    const received = await client
      .createReceiver("dedupe", { receiveMode: "receiveAndDelete" })
      .receiveMessages(5, { maxWaitTimeInMs: 300 });
    expect(bodies(received)).toEqual(["first"]);

    const plain = client.createSender("plain");
    await plain.sendMessages({ body: 1, messageId: "same" });
    await plain.sendMessages({ body: 2, messageId: "same" });
    expect(emulator.counts("plain").total).toBe(2);
  });

  it("when the duplicate-detection window has passed, then the same messageId is accepted again", async () => {
    const clock = new ManualBrokerClock();
    const { client, emulator } = await startBus(
      [queue("window", { requiresDuplicateDetection: true, duplicateDetectionWindowMs: 300 })],
      { clock },
    );
    const sender = client.createSender("window");
    await sender.sendMessages({ body: 1, messageId: "again" });
    clock.advance(299);
    await sender.sendMessages({ body: 2, messageId: "again" });
    expect(emulator.counts("window").total).toBe(1);
    clock.advance(1);
    await sender.sendMessages({ body: 3, messageId: "again" });
    expect(emulator.counts("window").total).toBe(2);
  });
});
