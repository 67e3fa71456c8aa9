/**
 * Alerts tests: a platform with the simulators, a connected org, and a driver that plays the
 * Service Bus deterministically: it collects what the code sends or schedules (recording the
 * delay asked for and dropping a provisioning message whose id was already sent, as duplicate
 * detection does) and delivers it in order through the real consumer definitions
 * (`functions/provisioning.ts`, which routes `configure` messages, and the gateway consumer).
 */
import { randomUUID } from "node:crypto";

import { definitions as alertDefinitions } from "../../../functions/alerts.js";
import { definitions as gatewayDefinitions } from "../../../functions/gateway.js";
import { definitions as grafanaDefinitions } from "../../../functions/grafana.js";
import { definitions as meDefinitions } from "../../../functions/me.js";
import { definitions as provisioningDefinitions } from "../../../functions/provisioning.js";
import { bindUser, startSession, SESSION_COOKIE } from "../../../lib/auth/session.js";
import type { OutboundMessage, QueueKey } from "../../../lib/bus.js";
import { recordingBus } from "../../helpers/bus.js";
import type { FunctionDefinition, QueueDefinition } from "../../../lib/functions.js";
import type { Services } from "../../../lib/services.js";
import type { SimMember } from "../../../local/simulators/supabase.js";
import type { Platform } from "../../../local/platform.js";
import { TestClient } from "../../helpers/client.js";
import { OffsetClock } from "../../helpers/clock.js";
import { connectOrg, type ConnectedOrg } from "../../helpers/org.js";
import { startTestPlatform } from "../../helpers/platform.js";

export const alertTestDefinitions: FunctionDefinition[] = [
  ...grafanaDefinitions,
  ...alertDefinitions,
  ...meDefinitions,
  ...provisioningDefinitions,
  ...gatewayDefinitions,
];

export interface Delivery {
  queue: QueueKey;
  body: unknown;
  messageId: string;
  sessionId: string;
  delayMs: number;
}

const queueHandler = (name: string): QueueDefinition => {
  const def = alertTestDefinitions.find((d) => d.name === name);
  if (!def || def.kind !== "serviceBusQueue") throw new Error(`no queue definition ${name}`);
  return def;
};

export class QueueDriver {
  readonly pending: Delivery[] = [];
  readonly sent: Delivery[] = [];
  readonly services: Services;
  private readonly seen = new Set<string>();

  constructor(
    base: Services,
    private readonly client: () => TestClient,
  ) {
    const push = (queue: QueueKey, m: OutboundMessage, delayMs: number) => {
      const d: Delivery = {
        queue,
        body: structuredClone(m.body),
        messageId: m.messageId,
        sessionId: m.sessionId,
        delayMs,
      };
      this.sent.push(d);
      if (queue === "provisioning") {
        if (this.seen.has(m.messageId)) return;
        this.seen.add(m.messageId);
      }
      this.pending.push(d);
    };
    this.services = { ...base, bus: recordingBus(base.clock, push) };
  }

  /** Configure messages sent so far. */
  configureSent(): Delivery[] {
    return this.sent.filter((d) => (d.body as { kind?: string }).kind === "configure");
  }

  async step(): Promise<Delivery | undefined> {
    const d = this.pending.shift();
    if (!d) return undefined;
    const name = d.queue === "provisioning" ? "provisioningStep" : "gatewaySync";
    const ctx = this.client().context(name, { messageId: d.messageId, sessionId: d.sessionId });
    await queueHandler(name).handler(d.body, ctx, this.services);
    return d;
  }

  async drain(maxSteps = 2000): Promise<number> {
    let n = 0;
    while (n < maxSteps && (await this.step())) n++;
    if (this.pending.length > 0) throw new Error(`still ${this.pending.length} pending`);
    return n;
  }
}

export interface AlertsEnv {
  platform: Platform;
  clock: OffsetClock;
  newOrg(projects?: number): Promise<OrgEnv>;
  close(): Promise<void>;
}

export interface OrgEnv extends ConnectedOrg {
  driver: QueueDriver;
  /** The Owner's client (routes send through the driver). */
  client: TestClient;
  /** A further member, verified in a session of their own. */
  addMember(role: string): Promise<{ member: SimMember; client: TestClient }>;
  removeMember(userId: string): void;
  provision(ref: string): Promise<void>;
}

export async function startAlertsEnv(): Promise<AlertsEnv> {
  const clock = new OffsetClock();
  const platform = await startTestPlatform({
    deploymentDelayMs: 0,
    clock,
    // Alert e-mail needs an SMTP relay on the hosts; without one no contact point is provisioned.
    env: {
      SMTP_HOST: "smtp.example.com",
      SMTP_USER: "apikey",
      SMTP_PASSWORD: "smtp-password-for-tests",
      SMTP_FROM_ADDRESS: "alerts@example.com",
    },
  });
  const { supabase } = platform;
  if (!supabase || !platform.arm) throw new Error("the simulators must run");
  return {
    platform,
    clock,
    async newOrg(projects = 2) {
      const connected = await connectOrg(platform.services, supabase, { projects });
      const holder: { client?: TestClient } = {};
      const driver = new QueueDriver(platform.services, () => {
        if (!holder.client) throw new Error("no client yet");
        return holder.client;
      });
      const client = new TestClient(alertTestDefinitions, driver.services);
      holder.client = client;
      client.cookies.set(connected.cookie.name, connected.cookie.value);
      const sessionClient = async (member: SimMember) => {
        const { session, cookie } = await startSession(platform.services, connected.slug);
        await bindUser(platform.services, session.id, {
          id: member.user_id,
          name: member.user_name,
          role: member.role_name,
        });
        const c = new TestClient(alertTestDefinitions, driver.services);
        c.cookies.set(SESSION_COOKIE, cookie.value);
        return c;
      };
      return {
        ...connected,
        driver,
        client,
        async addMember(role) {
          const userId = randomUUID();
          const member: SimMember = {
            user_id: userId,
            user_name: `${role.toLowerCase()}-${userId.slice(0, 4)}`,
            email: `${userId.slice(0, 8)}@members.example`,
            role_name: role,
            mfa_enabled: false,
          };
          connected.org.members.push(member);
          // The member list is cached for a minute: let it expire.
          clock.advance(61_000);
          const c = await sessionClient(member);
          // Becomes a verified member (self-identified) by using the app.
          const me = await c.get("/api/me/notifications");
          if (me.status !== 200) throw new Error(`member not usable: ${me.text}`);
          return { member, client: c };
        },
        removeMember(userId) {
          const i = connected.org.members.findIndex((m) => m.user_id === userId);
          if (i >= 0) connected.org.members.splice(i, 1);
          clock.advance(61_000);
        },
        async provision(ref) {
          const res = await client.put(`/api/projects/${ref}/grafana`);
          if (res.status !== 202) throw new Error(`provision: ${res.status} ${res.text}`);
          await driver.drain();
        },
      };
    },
    close: () => platform.close(),
  };
}
