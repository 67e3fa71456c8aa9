/**
 * Shared set-up for the provisioning tests: a platform (Azurite, the simulators; ARM
 * deployments end at once), a connected org with a verified session, a TestClient over the
 * provisioning routes, and a driver that plays the Service Bus deterministically.
 *
 * The driver stands in for the queues: it collects what the code sends or schedules, delivers
 * it in order to the real consumers (scheduled messages at once, recording the delay asked for),
 * redelivers a message whose handler threw (as the queue does with an abandoned message, up to
 * the max delivery count, then to the dead-letter consumer), and can crash a handler at a
 * chosen point or deliver a message twice.
 */
import { randomUUID } from "node:crypto";

import { expect } from "vitest";

import { definitions as gatewayDefinitions } from "../../../functions/gateway.js";
import { definitions as grafanaDefinitions } from "../../../functions/grafana.js";
import { definitions as opsDefinitions } from "../../../functions/ops.js";
import { definitions as provisioningDefinitions } from "../../../functions/provisioning.js";
import { definitions as reconcilerDefinitions } from "../../../functions/reconciler.js";
import type { Bus, OutboundMessage, QueueKey } from "../../../lib/bus.js";
import { recordingBus } from "../../helpers/bus.js";
import type { FunctionDefinition } from "../../../lib/functions.js";
import { handleGatewayMessage } from "../../../lib/gateway/consumer.js";
import { getInstance } from "../../../lib/instances/store.js";
import type { Instance } from "../../../lib/instances/model.js";
import { handleProvisioningDeadLetter } from "../../../lib/provisioning/engine.js";
import { handleProvisioningQueueMessage } from "../../../lib/provisioning/queue.js";
import type { ProvisioningMessage } from "../../../lib/provisioning/messages.js";
import type { Services } from "../../../lib/services.js";
import { TABLE_NAMES } from "../../../lib/storage/tables.js";
import type { Platform, PlatformOptions } from "../../../local/platform.js";
import type { ArmSimulator } from "../../../local/simulators/arm.js";
import type { SupabaseSimulator } from "../../../local/simulators/supabase.js";
import { TestClient } from "../../helpers/client.js";
import { startTestPlatform } from "../../helpers/platform.js";
import { connectOrg, type ConnectedOrg } from "../../helpers/org.js";
import { parseEvent } from "../../../lib/telemetry.js";

export const provisioningTestDefinitions: FunctionDefinition[] = [
  ...grafanaDefinitions,
  ...provisioningDefinitions,
  ...gatewayDefinitions,
  ...reconcilerDefinitions,
  ...opsDefinitions,
];

export interface Delivery {
  queue: QueueKey;
  body: unknown;
  messageId: string;
  sessionId: string;
  /** Delay the sender asked for (0 = send now). */
  delayMs: number;
  deliveryCount: number;
  /** A copy made by `duplicateAll` (not copied again). */
  copy?: boolean;
}

export type CrashPoint =
  /** The first write of the instance row while handling the message. */
  | "first-write"
  /** The write that persists the outcome (step or attempt changes). */
  | "persist-outcome"
  /** Sending the next provisioning message, after the outcome is persisted. */
  | "send"
  /** After the handler succeeded: the completion is lost and the message comes again. */
  | "complete";

const MAX_DELIVERY = 10;

export class Driver {
  readonly pending: Delivery[] = [];
  /** Every message the code sent, in order. */
  readonly sent: Delivery[] = [];
  readonly deadLettered: Delivery[] = [];
  /** Drop a provisioning message whose id was already sent (the queue's duplicate detection). */
  dedupe = true;
  /** Deliver every provisioning message a second time after it was handled. */
  duplicateAll = false;
  private readonly seenIds = new Set<string>();
  crash: { point: CrashPoint; match: (m: Delivery) => boolean } | undefined;
  private armed: CrashPoint | undefined;
  private current: Delivery | undefined;
  private instanceWrites = 0;
  readonly services: Services;
  readonly bus: Bus;

  constructor(
    base: Services,
    private readonly client: TestClient,
  ) {
    const push = (queue: QueueKey, m: OutboundMessage, delayMs: number) => {
      if (queue === "provisioning" && this.current && this.armed === "send") {
        this.armed = undefined;
        this.crash = undefined;
        throw new Error("simulated crash before the send");
      }
      const d: Delivery = {
        queue,
        body: structuredClone(m.body),
        messageId: m.messageId,
        sessionId: m.sessionId,
        delayMs,
        deliveryCount: 1,
      };
      this.sent.push(d);
      if (queue === "provisioning" && this.dedupe) {
        if (this.seenIds.has(m.messageId)) return;
        this.seenIds.add(m.messageId);
      }
      this.pending.push(d);
    };
    this.bus = recordingBus(base.clock, push);
    const tables = base.tables;
    const crashingInstances = (name: Parameters<Services["tables"]["client"]>[0]) => {
      const real = tables.client(name);
      if (name !== "instances") return real;
      return new Proxy(real, {
        get: (target, prop, receiver) => {
          const value: unknown = Reflect.get(target, prop, receiver);
          if (prop !== "updateEntity" || typeof value !== "function") {
            return typeof value === "function"
              ? (value as (...a: unknown[]) => unknown).bind(target)
              : value;
          }
          return (entity: Record<string, unknown>, ...rest: unknown[]) => {
            this.instanceWrites += 1;
            const m = this.current?.body as ProvisioningMessage | undefined;
            const first = this.armed === "first-write" && this.instanceWrites === 1;
            const outcome =
              this.armed === "persist-outcome" &&
              m &&
              (entity.step !== m.step || entity.attempts !== m.attempt);
            if (first || outcome) {
              this.armed = undefined;
              this.crash = undefined;
              return Promise.reject(new Error("simulated crash before the write"));
            }
            return (value as (...a: unknown[]) => unknown).call(target, entity, ...rest);
          };
        },
      });
    };
    this.services = { ...base, bus: this.bus, tables: { ...tables, client: crashingInstances } };
  }

  /** Crash once, at `point`, while handling the first message that matches. */
  crashOnce(point: CrashPoint, match: (m: Delivery) => boolean): void {
    this.crash = { point, match };
  }

  get crashPending(): boolean {
    return this.crash !== undefined;
  }

  /** Delivers the next message; false when there is none. */
  async step(): Promise<boolean> {
    const d = this.pending.shift();
    if (!d) return false;
    this.current = d;
    this.instanceWrites = 0;
    const crashing = this.crash && this.crash.match(d) ? this.crash.point : undefined;
    // The crash stays planned until it actually happens (a step may not write or send at all).
    if (crashing === "complete") this.crash = undefined;
    this.armed = crashing === "complete" ? undefined : crashing;
    const ctx = this.client.context(
      d.queue === "provisioning" ? "provisioningStep" : "gatewaySync",
      {
        messageId: d.messageId,
        deliveryCount: d.deliveryCount,
        sessionId: d.sessionId,
      },
    );
    try {
      if (d.queue === "provisioning")
        await handleProvisioningQueueMessage(this.services, d.body, ctx);
      else await handleGatewayMessage(this.services, d.body, ctx);
      if (crashing === "complete")
        this.pending.unshift({ ...d, deliveryCount: d.deliveryCount + 1 });
      if (this.duplicateAll && d.queue === "provisioning" && !d.copy)
        this.pending.push({ ...d, copy: true, deliveryCount: 1 });
    } catch {
      // Abandoned: the queue delivers it again, then dead-letters it.
      if (d.deliveryCount >= MAX_DELIVERY) {
        this.deadLettered.push(d);
        if (d.queue === "provisioning") {
          await handleProvisioningDeadLetter(
            this.services,
            d.body,
            await this.client.serviceBusContext("provisioningDeadLetter", {
              body: d.body,
              deliveryCount: d.deliveryCount,
              deadLetterReason: "MaxDeliveryCountExceeded",
            }),
          ).catch(() => undefined);
        }
      } else {
        this.pending.unshift({ ...d, deliveryCount: d.deliveryCount + 1 });
      }
    } finally {
      this.armed = undefined;
      this.current = undefined;
    }
    return true;
  }

  /** Delivers until nothing is pending (bounded). */
  async drain(maxSteps = 500): Promise<number> {
    let n = 0;
    while (n < maxSteps && (await this.step())) n++;
    if (this.pending.length > 0)
      throw new Error(`still ${this.pending.length} messages after ${maxSteps} deliveries`);
    return n;
  }

  /** Delivers the same provisioning message again (a duplicate the queue let through). */
  duplicate(d: Delivery): void {
    this.pending.push({ ...d, deliveryCount: 1 });
  }
}

export interface ProvisioningEnv {
  platform: Platform;
  services: Services;
  arm: ArmSimulator;
  supabase: SupabaseSimulator;
  /** A fresh org with a verified session, a client and a driver per test. */
  newOrg(projects?: number): Promise<OrgEnv>;
  close(): Promise<void>;
}

export interface OrgEnv extends ConnectedOrg {
  client: TestClient;
  driver: Driver;
  services: Services;
  instance(ref: string): Promise<Instance | undefined>;
  /** PUT then drain: the instance at the end. */
  provision(ref: string): Promise<Instance>;
}

export async function startProvisioningEnv(opts: PlatformOptions = {}): Promise<ProvisioningEnv> {
  const platform = await startTestPlatform({ deploymentDelayMs: 0, ...opts });
  const { arm, supabase } = platform;
  if (!arm || !supabase) throw new Error("the ARM and Supabase simulators must run");
  return {
    platform,
    services: platform.services,
    arm,
    supabase,
    async newOrg(projects = 3) {
      const connected = await connectOrg(platform.services, supabase, { projects });
      const client = new TestClient(provisioningTestDefinitions, platform.services);
      client.cookies.set(connected.cookie.name, connected.cookie.value);
      const driver = new Driver(platform.services, client);
      // Routes go through the driver's bus too, so every message is under the test's control.
      const routed = new TestClient(provisioningTestDefinitions, driver.services);
      routed.cookies.set(connected.cookie.name, connected.cookie.value);
      // Share one log list between the two clients.
      (routed as { logs: unknown[] }).logs = client.logs;
      return {
        ...connected,
        client: routed,
        driver,
        services: driver.services,
        instance: (ref) => getInstance(platform.services, connected.slug, ref),
        async provision(ref) {
          const res = await routed.put(`/api/projects/${ref}/grafana`);
          expect(res.status, JSON.stringify(res.body)).toBe(202);
          await driver.drain();
          const i = await getInstance(platform.services, connected.slug, ref);
          if (!i) throw new Error("no instance");
          return i;
        },
      };
    },
    close: () => platform.close(),
  };
}

/** Resources of one project in the ARM simulator. */
export function resourcesOf(arm: ArmSimulator, ref: string) {
  return arm.resources().filter((r) => r.tags["supafana-ref"] === ref);
}

export function deploymentsOf(arm: ArmSimulator, ref: string) {
  return arm.deployments().filter((d) => d.name === `grafana-${ref}`);
}

export function dnsOf(arm: ArmSimulator, ref: string) {
  return arm.dnsRecords().filter((r) => r.name === ref);
}

/** A deprovisioned project left nothing in Azure: no tagged resource, deployment or DNS record. */
export function expectNothingLeft(arm: ArmSimulator, ref: string): void {
  expect(resourcesOf(arm, ref)).toEqual([]);
  expect(deploymentsOf(arm, ref)).toEqual([]);
  expect(dnsOf(arm, ref)).toEqual([]);
}

/** Every entity of every table (of this test platform's prefix), as one JSON string. */
export async function allTableRows(services: Services): Promise<string> {
  const rows: unknown[] = [];
  for (const name of TABLE_NAMES) {
    for await (const e of services.tables.client(name).listEntities()) rows.push(e);
  }
  return JSON.stringify(rows);
}

/**
 * No table row and no log line of these orgs holds any Supabase key value the simulator handed
 * out (minted, deleted or a project's own), plain or base64.
 */
export async function expectNoKeyMaterial(
  env: ProvisioningEnv,
  orgs: readonly OrgEnv[],
): Promise<void> {
  const values = new Set<string>();
  for (const org of env.supabase.orgs) {
    for (const p of org.projects) {
      for (const k of [...(p.createdKeys ?? []), ...(p.deletedKeys ?? [])]) values.add(k.apiKey);
      if (p.serviceKey) values.add(p.serviceKey);
    }
  }
  expect(values.size).toBeGreaterThan(orgs.length);
  const rows = await allTableRows(env.services);
  const logs = JSON.stringify(orgs.map((o) => o.client.logs));
  const b64 = (v: string) => Buffer.from(v, "utf8").toString("base64");
  for (const v of values) {
    for (const form of [v, b64(v)]) {
      expect(rows.includes(form), "key in table rows").toBe(false);
      expect(logs.includes(form), "key in logs").toBe(false);
    }
  }
}

export const newOperationId = () => randomUUID();

export interface StepLogEntry {
  event: string;
  operationId?: string;
  step?: string;
  attempt?: number;
  outcome?: string;
}

/** The structured step entries an operation left in the captured logs, in order. */
export function stepLogs(client: TestClient, operationId: string): StepLogEntry[] {
  return client.logs
    .map((l) => parseEvent(l.args) as StepLogEntry | undefined)
    .filter(
      (f): f is StepLogEntry => f?.event === "provisioning.step" && f.operationId === operationId,
    );
}
