/**
 * Host replacement and data-disk snapshots against the ARM simulator, through the app's own ARM
 * functions (lib/azure/arm.ts, on the real `@azure/arm-*` SDK clients) and the SDK clients
 * directly: a VM's deletion honours `deleteOption`, a redeploy attaches the kept data disk as it
 * is, a missing data disk is created from a snapshot, snapshots are created, listed and deleted.
 */
import { ComputeManagementClient } from "@azure/arm-compute";
import { ResourceManagementClient } from "@azure/arm-resources";
import type { TokenCredential } from "@azure/core-auth";
import { isRestError, type RestError } from "@azure/core-rest-pipeline";
import { afterEach, describe, expect, it } from "vitest";

import {
  createSnapshot,
  dataDiskName,
  getDataDisk,
  getDeployment,
  isDataDisk,
  isSnapshot,
  isVm,
  listSnapshots,
  listTaggedResources,
  putDeployment,
  startDelete,
  vmNameFor,
  type TaggedResource,
} from "../../lib/azure/arm.js";
import { loadConfig } from "../../lib/config.js";
import { createServices, type Services } from "../../lib/services.js";
import {
  armSimulatorHttpClient,
  armSimulatorTransport,
  startArmSimulator,
  type ArmSimOptions,
  type ArmSimulator,
  type SimResource,
} from "../../local/simulators/arm.js";
import { validEnv } from "../helpers/env.js";
import { randomRef } from "../helpers/platform.js";

const SUB = "00000000-0000-4000-8000-0000000000c1";
const RG = "rg-grafana-snap";
const ARM = "https://management.azure.com";
const POLL = { updateIntervalInMs: 10 };

const credential: TokenCredential = {
  getToken: () => Promise.resolve({ token: "sim", expiresOnTimestamp: Date.now() + 3600e3 }),
};

/** The simulator's clock: it stands still unless a test moves it on. */
let now = Date.parse("2026-04-01T03:00:00Z");
const tick = (ms: number) => {
  now += ms;
};

let sim: ArmSimulator | undefined;
let services: Services | undefined;
afterEach(async () => {
  await services?.close();
  await sim?.close();
  sim = undefined;
  services = undefined;
});

async function start(extra: Partial<ArmSimOptions> = {}) {
  sim = await startArmSimulator({
    subscriptionId: SUB,
    deploymentDelayMs: 0,
    clock: () => now,
    ...extra,
  });
  const config = loadConfig({
    ...validEnv(),
    AZURE_SUBSCRIPTION_ID: SUB,
    GRAFANA_RESOURCE_GROUP: RG,
  });
  services = createServices(config, { credential, armTransport: armSimulatorTransport(sim.url) });
  const options = { endpoint: ARM, httpClient: armSimulatorHttpClient(sim.url) };
  const sdk = {
    compute: new ComputeManagementClient(credential, SUB, options),
    resources: new ResourceManagementClient(credential, SUB, options),
  };
  return { s: sim, svc: services, sdk };
}

async function deployHost(svc: Services, ref: string, dataDiskSnapshotId?: string) {
  const c = svc.config;
  const accepted = await putDeployment(svc, {
    ref,
    org: "org-snap",
    operationId: `op-${now}`,
    templateSpecId: c.GRAFANA_TEMPLATE_SPEC_ID,
    vmSize: c.GRAFANA_VM_SIZE,
    cloudInit: "#cloud-config\n",
    subnetId: c.GRAFANA_SUBNET_ID,
    adminSshPublicKey: c.GRAFANA_ADMIN_SSH_PUBLIC_KEY,
    ...(dataDiskSnapshotId !== undefined ? { dataDiskSnapshotId } : {}),
  });
  expect(accepted).toBe("accepted");
  return getDeployment(svc, ref);
}

const byName = (s: ArmSimulator, name: string): SimResource | undefined =>
  s.resources().find((r) => r.name === name);

async function restError(p: Promise<unknown>): Promise<RestError> {
  try {
    await p;
  } catch (err) {
    if (isRestError(err)) return err;
    throw new Error(`expected a RestError, got ${String(err)}`, { cause: err });
  }
  throw new Error("expected the call to throw");
}

/** The host's resources that are tagged with its ref, by kind. */
async function tagged(svc: Services, ref: string) {
  const all = await listTaggedResources(svc, ref);
  const kind = (r: TaggedResource) =>
    isVm(r)
      ? "vm"
      : isDataDisk(r)
        ? "data"
        : isSnapshot(r)
          ? "snapshot"
          : r.name.slice(vmNameFor(r.ref).length + 1);
  return all.map(kind).sort();
}

describe("ARM simulator: replacing a host", () => {
  it("when the VM is deleted, then its OS disk goes with it, the NIC and data disk stay, and a redeploy attaches the same disk", async () => {
    const { s, svc, sdk } = await start();
    const ref = randomRef();
    expect((await deployHost(svc, ref))?.provisioningState).toBe("Succeeded");
    const disk = await getDataDisk(svc, ref);
    expect(disk?.id).toMatch(
      new RegExp(`/providers/Microsoft\\.Compute/disks/${dataDiskName(ref)}$`),
    );
    expect(disk?.uniqueId).toMatch(/^[0-9a-f-]{36}$/);
    expect(disk?.createdAt?.getTime()).toBe(now);
    const osDiskBefore = byName(s, `${vmNameFor(ref)}-osdisk`);
    const vmBefore = await sdk.compute.virtualMachines.get(RG, vmNameFor(ref));
    expect(vmBefore.storageProfile?.osDisk?.deleteOption).toBe("Delete");
    expect(vmBefore.storageProfile?.dataDisks?.[0]).toMatchObject({
      createOption: "Attach",
      deleteOption: "Detach",
    });

    const vm = (await listTaggedResources(svc, ref)).find(isVm);
    if (!vm) throw new Error("no VM");
    await startDelete(svc, vm);
    expect(await tagged(svc, ref)).toEqual(["data", "nic"].sort());
    const kept = await sdk.compute.disks.get(RG, dataDiskName(ref));
    expect(kept.diskState).toBe("Unattached");
    expect(kept.managedBy).toBeUndefined();

    tick(60_000);
    expect((await deployHost(svc, ref))?.provisioningState).toBe("Succeeded");
    // The same data disk, untouched; a new VM and OS disk.
    expect(await getDataDisk(svc, ref)).toEqual(disk);
    const reattached = await sdk.compute.disks.get(RG, dataDiskName(ref));
    expect(reattached.creationData?.createOption).toBe("Empty");
    expect(reattached.diskState).toBe("Attached");
    const vmAfter = await sdk.compute.virtualMachines.get(RG, vmNameFor(ref));
    expect(vmAfter.vmId).not.toBe(vmBefore.vmId);
    expect(vmAfter.storageProfile?.dataDisks?.[0]?.managedDisk?.id).toBe(disk?.id);
    const osDiskAfter = byName(s, `${vmNameFor(ref)}-osdisk`);
    expect(osDiskAfter?.properties.uniqueId).not.toBe(osDiskBefore?.properties.uniqueId);
  });

  it("when deletes take time, then the OS disk is Deleting with its VM and goes when the VM goes", async () => {
    const { s, svc, sdk } = await start({ deleteDelayMs: 100 });
    const ref = randomRef();
    await deployHost(svc, ref);
    const poller = sdk.compute.virtualMachines.delete(RG, vmNameFor(ref), POLL);
    await poller.submitted();
    expect(byName(s, vmNameFor(ref))?.properties.provisioningState).toBe("Deleting");
    expect(byName(s, `${vmNameFor(ref)}-osdisk`)?.properties.provisioningState).toBe("Deleting");
    expect(byName(s, dataDiskName(ref))?.properties.provisioningState).toBe("Succeeded");
    tick(99);
    expect(byName(s, `${vmNameFor(ref)}-osdisk`)).toBeDefined();
    tick(1);
    await poller.pollUntilDone();
    expect(byName(s, vmNameFor(ref))).toBeUndefined();
    expect(byName(s, `${vmNameFor(ref)}-osdisk`)).toBeUndefined();
    expect(byName(s, dataDiskName(ref))?.properties.diskState).toBe("Unattached");
    expect(byName(s, `${vmNameFor(ref)}-nic`)).toBeDefined();
  });

  it("when the data disk is lost, then a redeploy with a snapshot id creates it as a copy, and one without creates it empty", async () => {
    const { s, svc, sdk } = await start();
    const ref = randomRef();
    await deployHost(svc, ref);
    const original = await getDataDisk(svc, ref);
    if (!original) throw new Error("no data disk");
    await createSnapshot(svc, {
      ref,
      org: "org-snap",
      name: `${ref}-d1`,
      sourceDiskId: original.id,
    });
    const [snapshot] = await listSnapshots(svc, ref);
    if (!snapshot) throw new Error("no snapshot");

    // Someone deleted the VM and the disk in the portal.
    expect(
      s.removeResource(
        `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Compute/virtualMachines/${vmNameFor(ref)}`,
      ),
    ).toBe(true);
    expect(s.removeResource(original.id.toUpperCase())).toBe(true);
    expect(s.removeResource(original.id)).toBe(false);
    expect(await getDataDisk(svc, ref)).toBeUndefined();
    expect(await tagged(svc, ref)).toEqual(["nic", "snapshot"].sort());

    tick(1000);
    expect((await deployHost(svc, ref, snapshot.id))?.provisioningState).toBe("Succeeded");
    const restored = await getDataDisk(svc, ref);
    expect(restored?.id).toBe(original.id);
    expect(restored?.uniqueId).not.toBe(original.uniqueId);
    expect(restored?.createdAt?.getTime()).toBe(now);
    const copy = await sdk.compute.disks.get(RG, dataDiskName(ref));
    expect(copy.creationData).toMatchObject({
      createOption: "Copy",
      sourceResourceId: snapshot.id,
      sourceUniqueId: (await sdk.compute.snapshots.get(RG, snapshot.name)).uniqueId,
    });
    expect(copy.diskState).toBe("Attached");
    const deployed = s.deployments().find((d) => d.name === `grafana-${ref}`);
    expect(deployed?.parameters.dataDiskSnapshotId).toEqual({ value: snapshot.id });

    // The disk exists now: a redeploy that still names the snapshot leaves it as it is.
    tick(1000);
    await deployHost(svc, ref, snapshot.id);
    expect(await getDataDisk(svc, ref)).toEqual(restored);

    // Lost again, redeployed without a snapshot: a new empty disk, and no parameter sent.
    s.removeResource(
      `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Compute/virtualMachines/${vmNameFor(ref)}`,
    );
    s.removeResource(copy.id ?? "");
    await deployHost(svc, ref);
    const fresh = await sdk.compute.disks.get(RG, dataDiskName(ref));
    expect(fresh.creationData?.createOption).toBe("Empty");
    expect(fresh.uniqueId).not.toBe(restored?.uniqueId);
    const lastPut = s
      .deployments()
      .find((d) => d.name === `grafana-${ref}`)
      ?.history.at(-1);
    expect(lastPut?.parameters).not.toHaveProperty("dataDiskSnapshotId");
  });

  it("when the snapshot to restore from does not exist, then the deployment fails as ARM's and creates nothing", async () => {
    const { s, svc } = await start();
    const ref = randomRef();
    const missing = `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Compute/snapshots/gone`;
    const status = await deployHost(svc, ref, missing);
    expect(status?.provisioningState).toBe("Failed");
    expect(status?.error).toContain("NotFound");
    expect(status?.error).toContain(missing);
    expect(s.resources().filter((r) => r.resourceGroup === RG)).toEqual([]);
    // A snapshot id that is a disk is refused the same way.
    const other = randomRef();
    await deployHost(svc, other);
    const disk = await getDataDisk(svc, other);
    const wrongType = await deployHost(svc, ref, disk?.id);
    expect(wrongType?.provisioningState).toBe("Failed");
  });
});

describe("ARM simulator: data-disk snapshots", () => {
  it("when snapshots are created, then they are incremental, tagged and listed newest first in one request", async () => {
    const { s, svc, sdk } = await start();
    const [a, b] = [randomRef(), randomRef()];
    await deployHost(svc, a);
    await deployHost(svc, b);
    const diskA = await getDataDisk(svc, a);
    const diskB = await getDataDisk(svc, b);
    if (!diskA || !diskB) throw new Error("no data disks");

    const t0 = now;
    await createSnapshot(svc, { ref: a, org: "org-a", name: `${a}-day1`, sourceDiskId: diskA.id });
    tick(86_400_000);
    await createSnapshot(svc, { ref: b, org: "org-b", name: `${b}-day2`, sourceDiskId: diskB.id });
    tick(1);
    await createSnapshot(svc, { ref: a, org: "org-a", name: `${a}-day2`, sourceDiskId: diskA.id });
    // A redelivered create of the same snapshot is accepted and changes nothing.
    await createSnapshot(svc, { ref: a, org: "org-a", name: `${a}-day2`, sourceDiskId: diskA.id });

    const got = await sdk.compute.snapshots.get(RG, `${a}-day1`);
    expect(got).toMatchObject({
      incremental: true,
      provisioningState: "Succeeded",
      tags: { "supafana-ref": a, "supafana-org": "org-a" },
      creationData: {
        createOption: "Copy",
        sourceResourceId: diskA.id,
        sourceUniqueId: diskA.uniqueId,
      },
      location: "eastus",
    });
    expect(got.timeCreated?.getTime()).toBe(t0);

    s.resetRequests();
    const all = await listSnapshots(svc);
    expect(s.requests().map((r) => `${r.method} ${r.path}`)).toEqual([
      `GET /subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Compute/snapshots`,
    ]);
    expect(all.map((x) => [x.name, x.ref, x.createdAt.getTime() - t0])).toEqual([
      [`${a}-day2`, a, 86_400_001],
      [`${b}-day2`, b, 86_400_000],
      [`${a}-day1`, a, 0],
    ]);
    expect(all[0]).toMatchObject({
      sourceUniqueId: diskA.uniqueId,
      id: expect.stringMatching(/\/snapshots\//),
    });
    expect((await listSnapshots(svc, a)).map((x) => x.name)).toEqual([`${a}-day2`, `${a}-day1`]);
    expect(await listSnapshots(svc, randomRef())).toEqual([]);

    // The generic tagged list sees them too; the predicates tell them from the data disk.
    expect(await tagged(svc, a)).toEqual(
      ["data", "nic", "osdisk", "snapshot", "snapshot", "vm"].sort(),
    );

    // The same name from another disk is refused, as ARM does.
    const changed = await restError(
      createSnapshot(svc, { ref: a, org: "org-a", name: `${a}-day1`, sourceDiskId: diskB.id }),
    );
    expect(changed.statusCode).toBe(409);
    expect(changed.code).toBe("PropertyChangeNotAllowed");
  });

  it("when the source disk is missing, then creating a snapshot fails with ARM's 404 and nothing is created", async () => {
    const { s, svc, sdk } = await start();
    const ref = randomRef();
    const diskId = `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Compute/disks/${dataDiskName(ref)}`;
    const err = await restError(
      createSnapshot(svc, { ref, org: "o", name: `${ref}-x`, sourceDiskId: diskId }),
    );
    expect(err.statusCode).toBe(404);
    // The raw PUT (what the SDK sends) is checked by the simulator itself as well.
    const raw = await restError(
      sdk.compute.snapshots
        .createOrUpdate(RG, `${ref}-y`, {
          location: "eastus",
          incremental: true,
          creationData: { createOption: "Copy", sourceResourceId: diskId },
        })
        .submitted(),
    );
    expect(raw.statusCode).toBe(404);
    const noLocation = await fetch(
      `${s.url}/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Compute/snapshots/z?api-version=2025-01-02`,
      {
        method: "PUT",
        headers: { authorization: "Bearer sim", "content-type": "application/json" },
        body: JSON.stringify({
          properties: { creationData: { createOption: "Copy", sourceResourceId: diskId } },
        }),
      },
    );
    expect(noLocation.status).toBe(400);
    expect(await noLocation.json()).toMatchObject({ error: { code: "LocationRequired" } });
    expect(s.resources().filter((r) => r.resourceGroup === RG)).toEqual([]);
  });

  it("when the SDK creates a snapshot and waits, then the long-running operation ends with the snapshot", async () => {
    const { s, svc, sdk } = await start();
    const ref = randomRef();
    await deployHost(svc, ref);
    const disk = await getDataDisk(svc, ref);
    s.resetRequests();
    const done = await sdk.compute.snapshots
      .createOrUpdate(
        RG,
        `${ref}-sdk`,
        {
          location: "eastus",
          incremental: true,
          tags: { "supafana-ref": ref },
          creationData: { createOption: "Copy", sourceResourceId: disk?.id ?? "" },
        },
        POLL,
      )
      .pollUntilDone();
    expect(done).toMatchObject({
      name: `${ref}-sdk`,
      incremental: true,
      provisioningState: "Succeeded",
    });
    const [put] = s.requests();
    expect(put).toMatchObject({ method: "PUT", status: 202, apiVersion: "2025-01-02" });
    const listed = [];
    for await (const x of sdk.compute.snapshots.listByResourceGroup(RG)) listed.push(x.name);
    expect(listed).toEqual([`${ref}-sdk`]);
    const inSubscription = [];
    for await (const x of sdk.compute.snapshots.list()) inSubscription.push(x.name);
    expect(inSubscription).toEqual([`${ref}-sdk`]);
  });

  it("when a snapshot is deleted through startDelete, then it is Deleting for deleteDelayMs and then gone", async () => {
    const { s, svc, sdk } = await start({ deleteDelayMs: 500 });
    const ref = randomRef();
    await deployHost(svc, ref);
    const disk = await getDataDisk(svc, ref);
    await createSnapshot(svc, { ref, org: "o", name: `${ref}-old`, sourceDiskId: disk?.id ?? "" });
    const snap = (await listTaggedResources(svc, ref)).find(isSnapshot);
    if (!snap) throw new Error("no snapshot");
    s.resetRequests();
    await startDelete(svc, snap);
    expect(s.requests()[0]).toMatchObject({
      method: "DELETE",
      path: snap.id,
      apiVersion: "2025-01-02",
      status: 202,
    });
    expect((await sdk.compute.snapshots.get(RG, `${ref}-old`)).provisioningState).toBe("Deleting");
    // Deleting again joins the delete; a PUT of it meanwhile is refused.
    await startDelete(svc, snap);
    tick(499);
    expect(await listSnapshots(svc, ref)).toHaveLength(1);
    tick(1);
    expect(await listSnapshots(svc, ref)).toEqual([]);
    const gone = await restError(sdk.compute.snapshots.get(RG, `${ref}-old`));
    expect(gone.statusCode).toBe(404);
    // Already gone: still fine.
    await startDelete(svc, snap);
  });

  it("when resources are listed with $expand=createdTime, then each carries its creation time", async () => {
    const { sdk, svc } = await start();
    const ref = randomRef();
    const t0 = now;
    await deployHost(svc, ref);
    tick(5000);
    const disk = await getDataDisk(svc, ref);
    await createSnapshot(svc, { ref, org: "o", name: `${ref}-t`, sourceDiskId: disk?.id ?? "" });
    const times = new Map<string, number | undefined>();
    for await (const r of sdk.resources.resources.listByResourceGroup(RG, {
      expand: "createdTime",
      filter: `tagName eq 'supafana-ref' and tagValue eq '${ref}'`,
    })) {
      times.set(r.name ?? "", r.createdTime?.getTime());
    }
    expect(times.get(vmNameFor(ref))).toBe(t0);
    expect(times.get(`${ref}-t`)).toBe(t0 + 5000);
    const plain = [];
    for await (const r of sdk.resources.resources.listByResourceGroup(RG))
      plain.push(r.createdTime);
    expect(plain.every((t) => t === undefined)).toBe(true);
  });
});

describe("ARM simulator: test hooks for a host's health", () => {
  it("when a host is made unresponsive, then it does not answer until it resumes or its VM is replaced", async () => {
    const { s, svc } = await start();
    const ref = randomRef();
    expect(s.hostAnswers(ref)).toBe(false);
    expect(() => {
      s.setHostResponsive(ref, false);
    }).toThrow(/no Grafana host VM/);
    await deployHost(svc, ref);
    expect(s.hostAnswers(ref)).toBe(true);
    s.setHostResponsive(ref, false);
    expect(s.hostAnswers(ref)).toBe(false);
    // An in-place redeploy keeps the same (stuck) VM.
    await deployHost(svc, ref);
    expect(s.hostAnswers(ref)).toBe(false);
    s.setHostResponsive(ref, true);
    expect(s.hostAnswers(ref)).toBe(true);
    s.setHostResponsive(ref, false);
    // Replaced: the new VM answers.
    const vm = (await listTaggedResources(svc, ref)).find(isVm);
    if (!vm) throw new Error("no VM");
    await startDelete(svc, vm);
    expect(s.hostAnswers(ref)).toBe(false);
    await deployHost(svc, ref);
    expect(s.hostAnswers(ref)).toBe(true);
  });
});
