import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { definitions as reconcilerDefinitions } from "../../../functions/reconciler.js";
import { getInstance, saveInstance } from "../../../lib/instances/store.js";
import { runReconciler, trialReminderWindowMs } from "../../../lib/reconciler/index.js";
import { randomRef } from "../../helpers/platform.js";
import {
  deploymentsOf,
  dnsOf,
  resourcesOf,
  startProvisioningEnv,
  type OrgEnv,
  type ProvisioningEnv,
  expectNothingLeft,
} from "./harness.js";
import { parseEvent } from "../../../lib/telemetry.js";

let env: ProvisioningEnv;

beforeAll(async () => {
  env = await startProvisioningEnv();
});
afterAll(async () => {
  await env.close();
});

function plantHost(ref: string) {
  const rg = env.services.config.GRAFANA_RESOURCE_GROUP;
  const tags = { "supafana-ref": ref };
  env.arm.plantResource({
    resourceGroup: rg,
    type: "Microsoft.Network/networkInterfaces",
    name: `grafana-${ref}-nic`,
    tags,
  });
  env.arm.plantResource({
    resourceGroup: rg,
    type: "Microsoft.Compute/disks",
    name: `grafana-${ref}-data`,
    tags,
  });
  env.arm.plantResource({
    resourceGroup: rg,
    type: "Microsoft.Compute/virtualMachines",
    name: `grafana-${ref}`,
    tags,
  });
}

async function patch(o: OrgEnv, ref: string, fields: Record<string, unknown>) {
  const i = await getInstance(env.services, o.slug, ref);
  if (!i) throw new Error("no instance");
  await saveInstance(env.services, { ...i, ...fields });
}

const reconcile = (o: OrgEnv) => runReconciler(o.services, o.client.context("reconciler"));

describe("the reconciler", () => {
  it("when Azure holds resources tagged with a ref that has no live instance, then they are deleted and live ones are kept", async () => {
    const o = await env.newOrg(2);
    const live = o.refs[0] ?? "";
    const deleted = o.refs[1] ?? "";
    await o.provision(live);
    await o.provision(deleted);
    await o.client.delete(`/api/projects/${deleted}/grafana`);
    await o.driver.drain();
    const orphan = randomRef();
    plantHost(orphan);
    plantHost(deleted); // left over after the instance was deleted

    const report = await reconcile(o);
    expect(report.errors).toEqual([]);
    expect(report.orphanRefs).toBeGreaterThanOrEqual(2);
    // Three resources per planted host, each delete started by this run.
    expect(report.orphanDeletesStarted).toBeGreaterThanOrEqual(6);
    expect(report.orphansPending).toBe(0);
    expect(resourcesOf(env.arm, orphan)).toEqual([]);
    expect(resourcesOf(env.arm, deleted)).toEqual([]);
    // VM, NIC, OS disk, data disk, and the data disk's first daily snapshot.
    expect(
      resourcesOf(env.arm, live)
        .map((r) => r.type.split("/").pop())
        .sort(),
    ).toEqual(["disks", "disks", "networkInterfaces", "snapshots", "virtualMachines"]);
    expect((await o.instance(live))?.state).toBe("Running");
    // The report is logged for operators.
    const logged = o.client.logs.find((l) => l.args[0] === "reconciler report");
    expect(parseEvent(logged?.args ?? [])).toMatchObject({
      event: "reconciler.report",
      orphanDeletesStarted: report.orphanDeletesStarted,
    });
  });

  it("when one of our DNS records has no live instance, then it is deleted", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    await o.provision(ref);
    const orphan = randomRef();
    const { dns } = await import("../../../lib/azure/clients.js").then((m) =>
      m.armClients(env.services),
    );
    const c = env.services.config;
    await dns.recordSets.createOrUpdate(c.DNS_RESOURCE_GROUP, c.DNS_ZONE_NAME, orphan, "A", {
      ttl: 300,
      aRecords: [{ ipv4Address: c.GATEWAY_PUBLIC_IP }],
      metadata: { supafanaRef: orphan },
    });
    const report = await reconcile(o);
    expect(report.orphanDnsRecordsDeleted).toBeGreaterThanOrEqual(1);
    expect(dnsOf(env.arm, orphan)).toEqual([]);
    expect(dnsOf(env.arm, ref)).toHaveLength(1);
  });

  it("when a trial has ended, then the instance is deprovisioned and the requester is told", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    await o.provision(ref);
    await patch(o, ref, { trialEndsAt: new Date(Date.now() - 60_000) });
    const report = await reconcile(o);
    expect(report.trialsEnded).toBe(1);
    expect((await o.instance(ref))?.state).toBe("Deleting");
    await o.driver.drain();
    const after = await o.instance(ref);
    expect(after).toMatchObject({ state: "Deleted", operationReason: "trial_ended" });
    expectNothingLeft(env.arm, ref);
    const mails = env.platform.loops?.to(o.email) ?? [];
    expect(mails.at(-1)).toMatchObject({
      transactionalId: env.services.config.LOOPS_TX_INSTANCE_DELETED,
      dataVariables: { projectRef: ref, reason: "trial_ended" },
    });
    // A second run does nothing more for it.
    expect((await reconcile(o)).trialsEnded).toBe(0);
  });

  it("when a trial is about to end, then one reminder is sent", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    await o.provision(ref);
    const window = trialReminderWindowMs(env.services.config.TRIAL_HOURS);
    await patch(o, ref, { trialEndsAt: new Date(Date.now() + window / 2) });
    const first = await reconcile(o);
    const second = await reconcile(o);
    expect(first.trialRemindersSent).toBe(1);
    expect(second.trialRemindersSent).toBe(0);
    const reminders = (env.platform.loops?.to(o.email) ?? []).filter(
      (m) => m.transactionalId === env.services.config.LOOPS_TX_TRIAL_ENDING,
    );
    expect(reminders).toHaveLength(1);
    expect((await o.instance(ref))?.state).toBe("Running");
  });

  it("when a paid subscription has lapsed, then the org's paid instances are deprovisioned", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    await o.provision(ref);
    await patch(o, ref, { plan: "paid", trialEndsAt: undefined });
    await env.services.tables
      .client("installations")
      .updateEntity({ partitionKey: o.slug, rowKey: "", subscriptionStatus: "canceled" }, "Merge");
    const report = await reconcile(o);
    expect(report.lapsedDeprovisioned).toBe(1);
    await o.driver.drain();
    expect(await o.instance(ref)).toMatchObject({
      state: "Deleted",
      operationReason: "payment_lapsed",
    });
    expect(resourcesOf(env.arm, ref)).toEqual([]);
  });

  it("when an operation's message was lost, then it is re-driven and finishes", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    await o.client.put(`/api/projects/${ref}/grafana`);
    await o.driver.step(); // deploy ran and scheduled its continuation...
    o.driver.pending.splice(0); // ...which is lost
    await patch(o, ref, { nextRunAt: new Date(Date.now() - 10 * 60_000) });
    const report = await reconcile(o);
    expect(report.redriven).toBeGreaterThanOrEqual(1);
    await o.driver.drain();
    expect((await o.instance(ref))?.state).toBe("Running");
    expect(deploymentsOf(env.arm, ref)[0]?.puts).toBe(1);
  });

  it("when a stuck operation is past its budget, then the re-drive ends it Failed", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    await o.client.put(`/api/projects/${ref}/grafana`);
    o.driver.pending.splice(0);
    const budget = env.services.config.PROVISION_BUDGET_MINUTES;
    await patch(o, ref, {
      nextRunAt: new Date(Date.now() - 10 * 60_000),
      operationStartedAt: new Date(Date.now() - (budget + 5) * 60_000),
    });
    expect((await reconcile(o)).redriven).toBeGreaterThanOrEqual(1);
    await o.driver.drain();
    const failed = await o.instance(ref);
    expect(failed?.state).toBe("Failed");
    expect(failed?.lastError).toContain(`did not finish within ${budget} minutes`);
  });

  it("when the timer fires, then the reconciler runs and asks the gateway to converge", async () => {
    const o = await env.newOrg(1);
    const [timer] = reconcilerDefinitions;
    if (timer?.kind !== "timer") throw new Error("no timer");
    expect(timer.schedule).toBe("0 */5 * * * *");
    await timer.handler(
      {
        isPastDue: false,
        schedule: { adjustForDST: false },
        scheduleStatus: { last: "", next: "", lastUpdated: "" },
      },
      o.client.context("reconciler"),
      o.services,
    );
    expect(o.driver.pending.some((d) => d.queue === "gateway")).toBe(true);
    await o.driver.drain();
  });
});
