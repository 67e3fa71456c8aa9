/**
 * The whole pipeline through the Service Bus emulator and the local function host's queue
 * runners: real sessions, scheduled continuations, duplicate detection and dead letters. This
 * file starts its own emulator so no other test's consumers can take its messages.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { listDeadLetters } from "../../../lib/dead-letters.js";
import { LOCAL } from "../../../local/defaults.js";
import { startFunctionHost, type FunctionHost } from "../../../local/function-host.js";
import {
  startServiceBusEmulator,
  type ServiceBusEmulator,
} from "../../../local/service-bus/index.js";
import { TestClient } from "../../helpers/client.js";
import {
  deploymentsOf,
  dnsOf,
  provisioningTestDefinitions,
  startProvisioningEnv,
  type ProvisioningEnv,
  expectNothingLeft,
} from "./harness.js";
import { connectOrg, type ConnectedOrg } from "../../helpers/org.js";

let bus: ServiceBusEmulator;
let env: ProvisioningEnv;
let host: FunctionHost | undefined;
let org: ConnectedOrg;
let client: TestClient;
const hostLog: string[] = [];
/** Bound of one pipeline test: generous, as only a stuck pipeline should ever reach it. */
const PIPELINE_TIMEOUT_MS = 120_000;

beforeAll(async () => {
  bus = await startServiceBusEmulator({ port: 0 });
  env = await startProvisioningEnv({
    serviceBusConnection: bus.connectionString,
    deploymentDelayMs: 200,
  });
  org = await connectOrg(env.services, env.supabase, { projects: 2 });
  client = new TestClient(provisioningTestDefinitions, env.services);
  client.cookies.set(org.cookie.name, org.cookie.value);
});
afterAll(async () => {
  await host?.close();
  await env.close();
  await bus.close();
});

/**
 * Polls the instance until it is in one of `states`, within a generous bound: the pipeline runs
 * on the emulator's real scheduled delays, which a loaded machine stretches.
 */
async function waitForState(ref: string, states: string[]): Promise<Record<string, unknown>> {
  let last: Record<string, unknown> = {};
  try {
    await expect
      .poll(
        async () => {
          const res = await client.get(`/api/projects/${ref}/grafana`);
          last = res.body as Record<string, unknown>;
          return String(last.state);
        },
        { timeout: PIPELINE_TIMEOUT_MS, interval: 200 },
      )
      .toBeOneOf(states);
  } catch (err) {
    throw new Error(
      `waiting for ${states.join("/")}; last ${JSON.stringify(last)}\n${hostLog.slice(-20).join("\n")}`,
      { cause: err },
    );
  }
  return last;
}

describe("through the Service Bus emulator", () => {
  it(
    "when a provisioning message is dead-lettered, then the dead-letter consumer marks the operation Failed",
    async () => {
      const ref = org.refs[1] ?? "";
      expect((await client.put(`/api/projects/${ref}/grafana`)).status).toBe(202);
      // Before any consumer runs, take the message and dead-letter it.
      const sb = await env.services.bus.client();
      const receiver = await sb.acceptSession(env.services.config.PROVISIONING_QUEUE, ref);
      const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: PIPELINE_TIMEOUT_MS });
      if (!message) throw new Error("no message");
      expect(message.messageId).toMatch(/:deploy$/);
      await receiver.deadLetterMessage(message, {
        deadLetterReason: "MaxDeliveryCountExceeded",
        deadLetterErrorDescription: "test",
      });
      await receiver.close();
      expect(bus.counts(env.services.config.PROVISIONING_QUEUE).deadLettered).toBe(1);

      host = await startFunctionHost(provisioningTestDefinitions, env.services, {
        port: 0,
        adminKey: LOCAL.adminKey,
        functionKey: LOCAL.functionKey,
        runQueues: true,
        runTimers: false,
        log: (level, msg) => hostLog.push(`${level} ${msg}`),
      });
      const failed = await waitForState(ref, ["Failed"]);
      expect(failed.lastError).toMatch(/^Provisioning stopped after repeated internal errors/);
      // The consumer completes the dead letter after it has marked the row and recorded it for
      // operators, so the queue empties a moment after the state turns Failed.
      await expect
        .poll(() => bus.counts(env.services.config.PROVISIONING_QUEUE).deadLettered, {
          timeout: PIPELINE_TIMEOUT_MS,
        })
        .toBe(0);
      expect(hostLog.some((l) => l.startsWith("error") && l.includes("dead-lettered"))).toBe(true);
      expect(deploymentsOf(env.arm, ref)).toEqual([]);
      // Delivered as the Service Bus extension delivers it (the reason only among the message's
      // application properties), the operator record still names why it was dead-lettered.
      const [record] = (await listDeadLetters(env.services, "provisioning")).filter(
        (d) => d.sessionId === ref,
      );
      expect(record).toMatchObject({
        sessionId: ref,
        reason: "MaxDeliveryCountExceeded",
        description: "test",
      });
    },
    3 * PIPELINE_TIMEOUT_MS,
  );

  it(
    "when a project is provisioned and deleted, then it goes to Running and to Deleted through the queues",
    async () => {
      const ref = org.refs[0] ?? "";
      expect((await client.put(`/api/projects/${ref}/grafana`)).status).toBe(202);
      // A second PUT with the first message still queued: the same operation, no second message.
      const again = await client.put(`/api/projects/${ref}/grafana`);
      expect(again.status).toBe(202);
      const running = await waitForState(ref, ["Running", "Failed"]);
      expect(running.state).toBe("Running");
      expect(deploymentsOf(env.arm, ref)).toHaveLength(1);
      expect(deploymentsOf(env.arm, ref)[0]?.puts).toBe(1);
      expect(dnsOf(env.arm, ref)).toHaveLength(1);

      expect((await client.delete(`/api/projects/${ref}/grafana`)).status).toBe(202);
      await waitForState(ref, ["Deleted"]);
      expectNothingLeft(env.arm, ref);
      const counts = bus.counts(env.services.config.PROVISIONING_QUEUE);
      expect(counts.deadLettered).toBe(0);
    },
    3 * PIPELINE_TIMEOUT_MS,
  );
});
