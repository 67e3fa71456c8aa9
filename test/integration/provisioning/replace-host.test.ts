/**
 * Upgrade and heal: the host (VM, NIC, OS disk) is replaced and the data disk kept, through the
 * real consumers, the reconciler and the ARM simulator (deletes take time: `deleteDelayMs`).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { hostVersionOf, withTemplateSpecVersion } from "../../../lib/grafana-host/versions.js";
import { isRoutable, STEP_IDS } from "../../../lib/instances/lifecycle.js";
import { listInstances } from "../../../lib/instances/store.js";
import type { ProvisioningMessage } from "../../../lib/provisioning/messages.js";
import { runReconciler } from "../../../lib/reconciler/index.js";
import { OffsetClock } from "../../helpers/clock.js";
import {
  resourcesOf,
  startProvisioningEnv,
  type CrashPoint,
  type Delivery,
  type OrgEnv,
  type ProvisioningEnv,
} from "./harness.js";

let env: ProvisioningEnv;
const clock = new OffsetClock();

beforeAll(async () => {
  env = await startProvisioningEnv({ clock, deleteDelayMs: 2_000 });
});
afterAll(async () => {
  await env.close();
});

const ops = { headers: { "x-ops-actor": "on-call" } };
const TYPE = {
  vm: "Microsoft.Compute/virtualMachines",
  disk: "Microsoft.Compute/disks",
  snapshot: "Microsoft.Compute/snapshots",
};
const ofType = (ref: string, type: string) =>
  resourcesOf(env.arm, ref).filter((r) => r.type.toLowerCase() === type.toLowerCase());
const dataDisk = (ref: string) => ofType(ref, TYPE.disk).find((r) => r.name.endsWith("-data"));
const vms = (ref: string) => ofType(ref, TYPE.vm);
const reconcile = (o: OrgEnv) => runReconciler(o.services, o.client.context("reconciler"));

/**
 * Delivers until the queues are empty. A scheduled message moves the clock on (by its delay, at
 * most 5 s at a time) before it is delivered, so deletes that take `deleteDelayMs` finish
 * as they would while the message waited.
 */
async function settle(o: OrgEnv, onStep?: () => Promise<void>): Promise<void> {
  for (let n = 0; n < 20_000; n++) {
    const next = o.driver.pending[0];
    if (!next) return;
    if (next.delayMs > 0) clock.advance(Math.min(next.delayMs, 5_000));
    await o.driver.step();
    if (onStep) await onStep();
  }
  throw new Error("the queues did not settle");
}

async function provisionAll(o: OrgEnv): Promise<void> {
  for (const ref of o.refs) {
    expect((await o.client.put(`/api/projects/${ref}/grafana`)).status).toBe(202);
  }
  await settle(o);
  for (const i of await listInstances(env.services, o.slug)) expect(i.state).toBe("Running");
}

describe("an upgrade of every Running instance", () => {
  it(
    "when 20 instances are upgraded in batches of 3, then every data disk is kept, all end Running on the new version with one VM, and never more than 3 are unroutable at once",
    { timeout: 300_000 },
    async () => {
      const o = await env.newOrg(20);
      await provisionAll(o);
      const disksBefore = new Map(o.refs.map((ref) => [ref, dataDisk(ref)]));
      const target = hostVersionOf(
        withTemplateSpecVersion(env.services.config.GRAFANA_TEMPLATE_SPEC_ID, "2.0.0"),
      );
      for (const i of await listInstances(env.services, o.slug))
        expect(i.hostVersion).not.toBe(target);

      const res = await o.client.post("/api/ops/instances/upgrade", {
        ...ops,
        body: { templateSpecVersion: "2.0.0", batch: 3, org: o.slug },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      expect(res.body).toMatchObject({ hostVersion: target, status: "running", batch: 3 });

      let maxUnroutable = 0;
      await settle(o, async () => {
        const unroutable = (await listInstances(env.services, o.slug)).filter(
          (i) => !isRoutable(i),
        );
        maxUnroutable = Math.max(maxUnroutable, unroutable.length);
      });

      expect(maxUnroutable).toBeGreaterThan(0);
      expect(maxUnroutable).toBeLessThanOrEqual(3);
      for (const i of await listInstances(env.services, o.slug)) {
        expect(i).toMatchObject({ state: "Running", hostVersion: target, operation: "upgrade" });
        const before = disksBefore.get(i.ref);
        expect(before).toBeDefined();
        expect(dataDisk(i.ref)?.id).toBe(before?.id);
        expect(dataDisk(i.ref)?.properties.uniqueId).toBe(before?.properties.uniqueId);
        expect(vms(i.ref)).toHaveLength(1);
      }
      // Each redeploy used the new template spec version, once per instance.
      const puts = env.arm
        .deploymentPuts()
        .filter((p) => o.refs.some((r) => p.deployment.endsWith(r)));
      expect(puts.reduce((n, p) => n + p.puts, 0)).toBe(40);
      const rollout = await o.client.get("/api/ops/rollout", ops);
      expect(rollout.body).toMatchObject({ status: "done", upgraded: 20, failed: 0, remaining: 0 });
      // The web sees the version.
      const view = await o.client.get(`/api/projects/${o.refs[0]}/grafana`);
      expect(view.body).toMatchObject({ state: "Running", hostVersion: target });
    },
  );

  it("when an upgrade's deployment fails, then the data disk stays, the instance is Failed with lastError, and a retry converges", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    await provisionAll(o);
    const disk = dataDisk(ref);
    env.arm.failNextDeployment(ref);
    expect(
      (
        await o.client.post("/api/ops/instances/upgrade", {
          ...ops,
          body: { org: o.slug, templateSpecVersion: "3.0.0" },
        })
      ).status,
    ).toBe(202);
    await settle(o);
    const failed = await o.instance(ref);
    expect(failed).toMatchObject({ state: "Failed", operation: "upgrade" });
    expect(failed?.lastError).toContain("SkuNotAvailable");
    expect(dataDisk(ref)?.id).toBe(disk?.id);
    expect((await o.client.post(`/api/ops/instances/${o.slug}/${ref}/retry`, ops)).status).toBe(
      202,
    );
    await settle(o);
    const after = await o.instance(ref);
    expect(after).toMatchObject({ state: "Running", operation: "upgrade" });
    expect(after?.hostVersion).toBe(
      hostVersionOf(withTemplateSpecVersion(env.services.config.GRAFANA_TEMPLATE_SPEC_ID, "3.0.0")),
    );
    expect(dataDisk(ref)?.properties.uniqueId).toBe(disk?.properties.uniqueId);
    expect(vms(ref)).toHaveLength(1);
  });
});

describe("healing a host", () => {
  it("when a Running host stops answering, then after the window it is replaced once, keeps its disk, records healedAt and e-mails nobody", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    await provisionAll(o);
    const disk = dataDisk(ref);
    const mailsBefore = env.platform.loops?.to(o.email).length ?? 0;
    env.arm.setHostResponsive(ref, false);

    // One blip does nothing; failures over the window do. (Other tests' instances share the
    // platform, so this one's row is what is checked.)
    await reconcile(o);
    expect(await o.instance(ref)).toMatchObject({ operation: "provision", failedProbes: 1 });
    clock.advance(5 * 60_000);
    await reconcile(o);
    expect(await o.instance(ref)).toMatchObject({ operation: "provision", failedProbes: 2 });
    clock.advance(6 * 60_000);
    await reconcile(o);
    const healing = await o.instance(ref);
    expect(healing?.operation).toBe("heal");
    // While it heals, the reconciler starts nothing more.
    await reconcile(o);
    expect((await o.instance(ref))?.operationId).toBe(healing?.operationId);

    env.arm.setHostResponsive(ref, true);
    await settle(o);
    const healed = await o.instance(ref);
    expect(healed).toMatchObject({
      state: "Running",
      operation: "heal",
      operationReason: "unresponsive",
    });
    expect(healed?.healedAt).toBeInstanceOf(Date);
    expect(healed?.failedProbes).toBeUndefined();
    expect(dataDisk(ref)?.properties.uniqueId).toBe(disk?.properties.uniqueId);
    expect(vms(ref)).toHaveLength(1);
    expect(env.platform.loops?.to(o.email).length ?? 0).toBe(mailsBefore);
    // Healthy again: no flapping.
    clock.advance(11 * 60_000);
    await reconcile(o);
    expect((await o.instance(ref))?.operationId).toBe(healed?.operationId);
  });

  it("when the VM was deleted in Azure, then the next run heals it at once", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    await provisionAll(o);
    clock.advance(1_000);
    const vm = vms(ref)[0];
    if (!vm) throw new Error("no VM");
    env.arm.removeResource(vm.id);
    clock.advance(1_000);
    await reconcile(o);
    expect(await o.instance(ref)).toMatchObject({
      operation: "heal",
      operationReason: "vm_missing",
    });
    await settle(o);
    expect(await o.instance(ref)).toMatchObject({
      state: "Running",
      operationReason: "vm_missing",
    });
    expect(vms(ref)).toHaveLength(1);
  });

  it("when the data disk is gone too, then the heal restores it from the newest snapshot", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    await provisionAll(o);
    // The daily snapshot, then another a day later: the newer one is restored.
    // (Other tests' instances share the platform: count this project's snapshots.)
    await reconcile(o);
    expect(ofType(ref, TYPE.snapshot)).toHaveLength(1);
    clock.advance(25 * 3600_000);
    await reconcile(o);
    const snapshots = ofType(ref, TYPE.snapshot).sort((a, b) => a.name.localeCompare(b.name));
    expect(snapshots).toHaveLength(2);
    const newest = snapshots[1];
    const lost = dataDisk(ref);
    const vm = vms(ref)[0];
    if (!vm || !lost) throw new Error("no host");
    env.arm.removeResource(vm.id);
    env.arm.removeResource(lost.id);
    clock.advance(1_000);
    await reconcile(o);
    expect(await o.instance(ref)).toMatchObject({
      operation: "heal",
      operationReason: "vm_missing",
    });
    await settle(o);
    const healed = await o.instance(ref);
    expect(healed).toMatchObject({ state: "Running", restoredFromSnapshot: newest?.id });
    const restored = dataDisk(ref);
    expect(restored?.properties.uniqueId).not.toBe(lost.properties.uniqueId);
    expect(restored?.properties.creationData).toMatchObject({
      createOption: "Copy",
      sourceResourceId: newest?.id,
    });
  });

  it("when an instance is deprovisioned, then its snapshots go with it", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    await provisionAll(o);
    await reconcile(o);
    expect(ofType(ref, TYPE.snapshot)).toHaveLength(1);
    expect((await o.client.delete(`/api/projects/${ref}/grafana`)).status).toBe(202);
    await settle(o);
    expect(resourcesOf(env.arm, ref)).toEqual([]);
  });
});

const POINTS: CrashPoint[] = ["first-write", "persist-outcome", "send", "complete"];
const stepOf = (d: Delivery) =>
  d.queue === "provisioning" ? (d.body as Partial<ProvisioningMessage>).step : undefined;
const REPLACE_STEPS = STEP_IDS.filter((s) =>
  ["unroute", "remove-host", "deploy", "await-deployment", "configure", "verify"].includes(s),
);

describe("a crash at any point of a replacement step, then the redelivery", () => {
  for (const operation of ["upgrade", "heal"] as const) {
    for (const step of REPLACE_STEPS) {
      for (const point of POINTS.filter((p) => step === "deploy" || p !== "first-write")) {
        it(`when ${operation} crashes at ${point} of ${step}, then it ends Running with exactly one VM, one deployment PUT and the same data disk`, async () => {
          const o = await env.newOrg(1);
          const ref = o.refs[0] ?? "";
          await provisionAll(o);
          const disk = dataDisk(ref);
          o.driver.crashOnce(point, (d) => stepOf(d) === step);
          if (operation === "upgrade") {
            await o.client.post("/api/ops/instances/upgrade", {
              ...ops,
              body: { org: o.slug, templateSpecVersion: "9.0.0" },
            });
          } else {
            env.arm.setHostResponsive(ref, false);
            await reconcile(o);
            clock.advance(11 * 60_000);
            await reconcile(o);
            clock.advance(60_000);
            await reconcile(o);
            expect((await o.instance(ref))?.operation).toBe("heal");
            env.arm.setHostResponsive(ref, true);
          }
          await settle(o);
          expect(o.driver.crashPending).toBe(false);
          const i = await o.instance(ref);
          expect(i).toMatchObject({ state: "Running", operation });
          expect(vms(ref)).toHaveLength(1);
          expect(dataDisk(ref)?.properties.uniqueId).toBe(disk?.properties.uniqueId);
          const puts = env.arm.deploymentPuts().filter((p) => p.operationId === i?.operationId);
          expect(puts.map((p) => p.puts)).toEqual([1]);
          expect(o.driver.deadLettered).toEqual([]);
        });
      }
    }
  }
});
