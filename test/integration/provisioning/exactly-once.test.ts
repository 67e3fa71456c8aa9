/**
 * One deployment PUT per operation when deliveries of the deploy step interleave: a session lock
 * lost on a loaded host hands the message to a second receiver while the first still runs it,
 * and a host can die between recording its request and sending it. Each test holds one run at
 * an exact point (an instance-row write) while another runs, so the interleaving is forced
 * rather than hoped for.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { getInstance, saveInstance } from "../../../lib/instances/store.js";
import {
  handleProvisioningMessage,
  type MessageOutcome,
} from "../../../lib/provisioning/engine.js";
import type { ProvisioningMessage } from "../../../lib/provisioning/messages.js";
import { DEPLOYMENT_REQUEST_GRACE_MS } from "../../../lib/provisioning/steps.js";
import type { Services } from "../../../lib/services.js";
import { startProvisioningEnv, type OrgEnv, type ProvisioningEnv } from "./harness.js";

let env: ProvisioningEnv;

beforeAll(async () => {
  env = await startProvisioningEnv();
});
afterAll(async () => {
  await env.close();
});

interface Hold {
  /** Resolves when a run reached the held write. */
  reached: Promise<void>;
  release(): void;
}

/**
 * The org's services with a gate on instance-row writes: `hold` stops the next write that
 * matches, before it is sent or after it is stored, until released.
 */
function gated(base: Services) {
  let armed:
    | {
        when: "before" | "after";
        match: (entity: Record<string, unknown>) => boolean;
        reached: () => void;
        released: Promise<void>;
      }
    | undefined;
  const client = (name: Parameters<Services["tables"]["client"]>[0]) => {
    const real = base.tables.client(name);
    if (name !== "instances") return real;
    return new Proxy(real, {
      get: (target, prop, receiver) => {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== "function") return value;
        const fn = value as (...a: unknown[]) => Promise<unknown>;
        if (prop !== "updateEntity") return fn.bind(target);
        return async (entity: Record<string, unknown>, ...rest: unknown[]) => {
          const gate = armed && armed.match(entity) ? armed : undefined;
          if (gate) armed = undefined;
          if (gate?.when === "before") {
            gate.reached();
            await gate.released;
          }
          const result = await fn.call(target, entity, ...rest);
          if (gate?.when === "after") {
            gate.reached();
            await gate.released;
          }
          return result;
        };
      },
    });
  };
  const services: Services = { ...base, tables: { ...base.tables, client } };
  return {
    services,
    hold(when: "before" | "after", match: (entity: Record<string, unknown>) => boolean): Hold {
      let reached!: () => void;
      let release!: () => void;
      const reachedP = new Promise<void>((r) => (reached = r));
      const released = new Promise<void>((r) => (release = r));
      armed = { when, match, reached, released };
      return { reached: reachedP, release };
    },
  };
}

/** The write that records the intent to PUT the deployment. */
const recordsRequest = (entity: Record<string, unknown>) =>
  entity.deploymentRequestedAt !== undefined && entity.step === "deploy";

async function requested(o: OrgEnv, ref: string) {
  expect((await o.client.put(`/api/projects/${ref}/grafana`)).status).toBe(202);
  const d = o.driver.pending.shift();
  const body = d?.body as ProvisioningMessage | undefined;
  if (!body || body.step !== "deploy") throw new Error("expected the deploy message");
  return body;
}

function run(o: OrgEnv, services: Services, m: ProvisioningMessage): Promise<MessageOutcome> {
  return handleProvisioningMessage(
    services,
    m,
    o.client.context("provisioningStep", { sessionId: m.ref, deliveryCount: 1 }),
  );
}

/** Deployment PUTs ARM received for this operation (refused ones included). */
function putsOf(operationId: string): number {
  return env.arm
    .deploymentPuts()
    .filter((p) => p.operationId === operationId)
    .reduce((n, p) => n + p.puts, 0);
}

const fixedClock = (at: Date) => ({ now: () => new Date(at.getTime()) });

describe("exactly one deployment PUT per operation", () => {
  it("when a second delivery of deploy runs while the first one's PUT is about to go out, then it waits and the operation PUTs once", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    const m = await requested(o, ref);
    const g = gated(o.driver.services);

    // The first run has recorded its request and is held before its PUT.
    const hold = g.hold("after", recordsRequest);
    const first = run(o, g.services, m);
    await hold.reached;
    // The same message, handed to a second receiver (the first one's session lock was lost).
    expect(await run(o, g.services, m)).toBe("wait");
    expect(putsOf(m.operationId)).toBe(0);
    hold.release();
    // The first run's PUT goes out; its outcome finds the row moved on and yields.
    expect(await first).toBe("stale");
    expect(putsOf(m.operationId)).toBe(1);

    await o.driver.drain();
    const i = await getInstance(env.services, o.slug, ref);
    expect(i?.state).toBe("Running");
    expect(i?.deploymentRequestedAt).toBeUndefined();
    expect(putsOf(m.operationId)).toBe(1);
    expect(env.arm.deployments().find((d) => d.name === `grafana-${ref}`)?.puts).toBe(1);
  });

  it("when two deliveries of deploy race to record the request, then the loser does not PUT", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    const m = await requested(o, ref);
    const g = gated(o.driver.services);

    // The first run has read the row (no deployment yet) and is held before recording.
    const hold = g.hold("before", recordsRequest);
    const first = run(o, g.services, m);
    await hold.reached;
    // The second run records, PUTs and moves the operation on.
    expect(await run(o, g.services, m)).toBe("done");
    expect(putsOf(m.operationId)).toBe(1);
    hold.release();
    // The first run's conditional write fails: it reads the row again and finds itself stale.
    expect(await first).toBe("stale");

    await o.driver.drain();
    expect((await getInstance(env.services, o.slug, ref))?.state).toBe("Running");
    expect(putsOf(m.operationId)).toBe(1);
  });

  it("when the PUT went out and the run died before saving, then the redelivery adopts the deployment", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    const m = await requested(o, ref);
    const g = gated(o.driver.services);

    // The run's outcome write (deploy -> await-deployment) never happens: the host died.
    const hold = g.hold("before", (e) => e.step === "await-deployment");
    const dead = run(o, g.services, m);
    await hold.reached;
    expect(putsOf(m.operationId)).toBe(1);

    // Redelivered (the lock expired): adopted, not PUT again.
    expect(await run(o, o.driver.services, m)).toBe("done");
    await o.driver.drain();
    expect((await getInstance(env.services, o.slug, ref))?.state).toBe("Running");
    expect(putsOf(m.operationId)).toBe(1);
    // Had the first run lived on, its outcome write would fail on the moved row.
    hold.release();
    expect(await dead).toBe("finished");
  });

  it("when a host died after recording its request and before its PUT, then the next runs wait out the grace period and then PUT once", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    const m = await requested(o, ref);
    const recordedAt = new Date();
    const before = await getInstance(env.services, o.slug, ref);
    if (!before) throw new Error("no instance");
    await saveInstance(env.services, {
      ...before,
      state: "Deploying",
      deploymentRequestOperationId: m.operationId,
      deploymentRequestedAt: recordedAt,
    });

    const at = (ms: number) => ({
      ...o.driver.services,
      clock: fixedClock(new Date(recordedAt.getTime() + ms)),
    });
    // Within the grace period the request may still be in flight: no PUT.
    expect(await run(o, at(DEPLOYMENT_REQUEST_GRACE_MS - 1), m)).toBe("wait");
    expect(putsOf(m.operationId)).toBe(0);
    const retry = o.driver.pending.shift()?.body as ProvisioningMessage | undefined;
    if (!retry) throw new Error("expected the next attempt");
    // Past it, the request is known never to have reached ARM: this run sends it.
    expect(await run(o, at(DEPLOYMENT_REQUEST_GRACE_MS), retry)).toBe("done");
    expect(putsOf(m.operationId)).toBe(1);

    await o.driver.drain();
    expect((await getInstance(env.services, o.slug, ref))?.state).toBe("Running");
    expect(putsOf(m.operationId)).toBe(1);
  });
});
