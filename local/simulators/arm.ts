/**
 * Azure Resource Manager simulator for the local host and the integration tests.
 *
 * It answers the ARM REST calls the project makes through the Azure SDK clients
 * (`@azure/arm-resources`, `@azure/arm-compute`, `@azure/arm-network`, `@azure/arm-dns`):
 * template-spec deployments of a Grafana host (NIC, VM, OS and data disk; a missing data disk from
 * a snapshot), listing and deleting resources (a VM takes along what its `deleteOption` says),
 * incremental snapshots of disks, run commands on the gateway VM, and A records in the public DNS
 * zone. Long-running
 * operations carry the same headers as in Azure (`Azure-AsyncOperation`, `Location`,
 * `Retry-After`) so the SDK pollers run unchanged. The SDK clients reach it through
 * `armSimulatorTransport` (their endpoint stays https; see `arm-http.ts`).
 */
import { randomUUID } from "node:crypto";
import { isIPv4 } from "node:net";
import {
  DROP_CONNECTION,
  json,
  startSimServer,
  type SimRequest,
  type SimResponse,
} from "./server.js";
import type {
  ArmErrorBody,
  ArmFault,
  ArmSimOptions,
  ArmSimulator,
  RunCommandExecutor,
  SimDeployment,
  SimDeploymentPut,
  SimDnsRecord,
  SimProvisioningState,
  SimRequestRecord,
  SimResource,
  SimRunCommand,
} from "./arm-types.js";
import {
  checkParameters,
  displayType,
  evaluateOutputs,
  grafanaHostTemplate,
  isSecureType,
  parseTemplate,
  TemplateExpressionError,
  type ArmTemplate,
  type ExpressionContext,
} from "./arm-template.js";

export { armSimulatorHttpClient, armSimulatorTransport } from "./arm-http.js";
export type * from "./arm-types.js";

const VM_TYPE = "Microsoft.Compute/virtualMachines";
const DISK_TYPE = "Microsoft.Compute/disks";
const SNAPSHOT_TYPE = "Microsoft.Compute/snapshots";
const NIC_TYPE = "Microsoft.Network/networkInterfaces";
const ZONE_TYPE = "Microsoft.Network/dnszones";
const DEPLOYMENT_TYPE = "Microsoft.Resources/deployments";
const KNOWN_TYPES = [VM_TYPE, DISK_TYPE, SNAPSHOT_TYPE, NIC_TYPE, ZONE_TYPE];
/** Azure keeps the last 4 KiB of each stream of a run command. */
const RUN_COMMAND_OUTPUT_LIMIT = 4096;
const REF_TAG = "supafana-ref";
/** The tag naming the operation that PUT a deployment. */
const OPERATION_TAG = "supafana-operation";

interface StoredResource {
  id: string;
  type: string;
  name: string;
  resourceGroup: string;
  location: string;
  tags: Record<string, string>;
  properties: Record<string, unknown>;
  /** When it was created (ms, the simulator's clock): `createdTime` of the resources list. */
  createdAt: number;
  /** Set while a DELETE is in progress. */
  deletingUntil?: number;
}

interface DeploymentRun {
  opId: string;
  state: SimProvisioningState;
  startedAt: number;
  completeAt: number;
  endedAt?: number;
  correlationId: string;
  failure?: ArmErrorBody;
  error?: ArmErrorBody;
  outputs?: Record<string, { type: string; value?: unknown }>;
  outputResources?: string[];
}

interface StoredDeployment {
  id: string;
  name: string;
  resourceGroup: string;
  mode: string;
  templateLink?: Record<string, unknown>;
  parameters: Record<string, unknown>;
  /** The template the last accepted PUT was checked against, and its parameters' values. */
  template: ArmTemplate;
  effective: Record<string, unknown>;
  tags?: Record<string, string>;
  puts: number;
  history: SimDeploymentPut[];
  run: DeploymentRun;
}

interface AsyncOp {
  id: string;
  kind: "delete" | "runCommand" | "create";
  /** The resource a "create" operation made (its result). */
  resourceKey?: string;
  status: "InProgress" | "Succeeded" | "Failed";
  startTime: string;
  endTime?: string;
  /** Deletes end by time; run commands when their executor answers. */
  doneAt?: number;
  output?: { value: Array<Record<string, unknown>> };
  error?: ArmErrorBody;
}

interface StoredRecordSet {
  zoneKey: string;
  zone: string;
  zoneId: string;
  resourceGroup: string;
  name: string;
  ttl: number;
  ips: string[];
  metadata?: Record<string, string>;
  etag: string;
}

interface ActiveFault extends ArmFault {
  remaining: number;
}

type Handled = SimResponse | typeof DROP_CONNECTION;

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

const lower = (s: string): string => s.toLowerCase();

function asRecord(v: unknown): Record<string, unknown> | undefined {
  return typeof v === "object" && v !== null && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}

/** A value as text: strings as they are, anything else as JSON. */
function toText(v: unknown): string {
  if (typeof v === "string") return v;
  const encoded = JSON.stringify(v) as string | undefined;
  return encoded ?? "";
}

function asString(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

function armError(
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): SimResponse {
  return json(status, { error: { code, message } }, headers);
}

function noContent(status: number, headers: Record<string, string> = {}): SimResponse {
  return { status, headers };
}

function canonicalType(type: string): string {
  return KNOWN_TYPES.find((k) => lower(k) === lower(type)) ?? type;
}

function isType(r: StoredResource, type: string): boolean {
  return lower(r.type) === lower(type);
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

function macFor(seed: string): string {
  const h = fnv1a(seed).toString(16).padStart(8, "0").toUpperCase();
  return `00-0D-3A-${h.slice(0, 2)}-${h.slice(2, 4)}-${h.slice(4, 6)}`;
}

function tail(s: string, limit: number): string {
  const buf = Buffer.from(s, "utf8");
  return buf.length <= limit ? s : buf.subarray(buf.length - limit).toString("utf8");
}

function isoDuration(ms: number): string {
  return `PT${(Math.max(0, ms) / 1000).toFixed(3).replace(/\.?0+$/, "")}S`;
}

function jsonType(v: unknown): string {
  if (typeof v === "string") return "String";
  if (typeof v === "number") return "Int";
  if (typeof v === "boolean") return "Bool";
  if (Array.isArray(v)) return "Array";
  return "Object";
}

function parseBody(req: SimRequest): unknown {
  if (req.rawBody.length === 0) return undefined;
  try {
    return JSON.parse(req.text) as unknown;
  } catch {
    return req.text;
  }
}

/** `tagName eq 'x' and tagValue eq 'y'`-style filters, as the resources list accepts. */
function parseFilter(filter: string): Array<{ field: string; value: string }> | undefined {
  const clauses: Array<{ field: string; value: string }> = [];
  let rest = filter.trim();
  while (rest !== "") {
    const m = /^([A-Za-z]+)\s+eq\s+'((?:[^']|'')*)'\s*/i.exec(rest);
    if (!m) return undefined;
    clauses.push({ field: lower(m[1] ?? ""), value: (m[2] ?? "").replaceAll("''", "'") });
    rest = rest.slice(m[0].length);
    if (rest !== "") {
      const and = /^and\s+/i.exec(rest);
      if (!and) return undefined;
      rest = rest.slice(and[0].length);
    }
  }
  return clauses;
}

/** Matches lower-cased segments against a pattern; `*` captures (original case). */
function match(segs: string[], pattern: string[]): string[] | undefined {
  if (segs.length !== pattern.length) return undefined;
  const captured: string[] = [];
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i] ?? "";
    const s = segs[i] ?? "";
    if (p === "*") captured.push(s);
    else if (p !== lower(s)) return undefined;
  }
  return captured;
}

function isLoopbackHost(host: string): boolean {
  const h = lower(host).replace(/:\d+$/, "");
  return h === "localhost" || h.startsWith("127.") || h === "[::1]" || h === "::1";
}

// ---------------------------------------------------------------------------------------------
// The simulator
// ---------------------------------------------------------------------------------------------

export async function startArmSimulator(opts: ArmSimOptions): Promise<ArmSimulator> {
  const sub = opts.subscriptionId;
  // Every time-driven change (deployments ending, deletes finishing) reads this clock.
  const clock = opts.clock ?? Date.now;
  const nowIso = (ms = clock()): string => new Date(ms).toISOString();
  const deploymentDelayMs = Math.max(0, opts.deploymentDelayMs ?? 1500);
  const deleteDelayMs = Math.max(0, opts.deleteDelayMs ?? 0);
  const defaultLocation = opts.location ?? "eastus";
  const subnetPrefix = opts.grafanaSubnetPrefix ?? "10.20.0.";
  const lroRetryAfter = String(opts.lroRetryAfterSeconds ?? 0);
  const publicEndpoint = (opts.publicEndpoint ?? "https://management.azure.com").replace(
    /\/+$/,
    "",
  );
  const secureParameters = new Set((opts.secureParameters ?? []).map(lower));
  const executor: RunCommandExecutor =
    opts.runCommandExecutor ?? (() => Promise.resolve({ exitCode: 0, stdout: "", stderr: "" }));

  const resources = new Map<string, StoredResource>();
  const deployments = new Map<string, StoredDeployment>();
  const deploymentOps = new Map<string, DeploymentRun>();
  const asyncOps = new Map<string, AsyncOp>();
  const recordSets = new Map<string, StoredRecordSet>();
  const runCommandLog: SimRunCommand[] = [];
  const busyVms = new Set<string>();
  const ipByRef = new Map<string, string>();
  const usedHosts = new Set<number>();
  const requestLog: SimRequestRecord[] = [];
  /** Deployment PUTs received, by `<resource group>/<name>|<operation tag>` (kept across resets). */
  const putsByOperation = new Map<string, number>();
  const faults: ActiveFault[] = [];
  /** VMs (by `vmId`) that stopped answering: a replacement VM (new `vmId`) answers again. */
  const unresponsiveVms = new Set<string>();
  const pendingFailures: Array<{ nameIncludes: string; error: ArmErrorBody }> = [];

  const resourceId = (rg: string, type: string, name: string): string =>
    `/subscriptions/${sub}/resourceGroups/${rg}/providers/${type}/${name}`;

  // ----- resources ------------------------------------------------------------------------------

  /** Removes a resource; a VM takes along the disks and NICs whose `deleteOption` is Delete. */
  function dropResource(key: string): void {
    const r = resources.get(key);
    if (!r) return;
    const alongWith = isType(r, VM_TYPE) ? deletedWithVm(r) : [];
    resources.delete(key);
    if (isType(r, ZONE_TYPE)) {
      for (const [k, rs] of recordSets) if (rs.zoneKey === key) recordSets.delete(k);
    }
    for (const k of alongWith) dropResource(k);
  }

  /** Keys of the resources a VM's deletion deletes too (`deleteOption: "Delete"`). */
  function deletedWithVm(vm: StoredResource): string[] {
    const storage = asRecord(vm.properties.storageProfile);
    const attached: Array<Record<string, unknown> | undefined> = [
      asRecord(storage?.osDisk),
      ...(Array.isArray(storage?.dataDisks) ? storage.dataDisks : []).map(asRecord),
    ];
    const ids: Array<string | undefined> = [];
    for (const d of attached) {
      if (asString(d?.deleteOption) === "Delete") ids.push(asString(asRecord(d?.managedDisk)?.id));
    }
    const nics = asRecord(vm.properties.networkProfile)?.networkInterfaces;
    for (const n of Array.isArray(nics) ? nics : []) {
      const nic = asRecord(n);
      if (asString(asRecord(nic?.properties)?.deleteOption) === "Delete") {
        ids.push(asString(nic?.id));
      }
    }
    return ids
      .filter((id): id is string => id !== undefined)
      .map(lower)
      .filter((k) => resources.has(k));
  }

  /** The VM of a project (tagged with its ref, or named `grafana-<ref>`), unless being deleted. */
  function hostVm(ref: string): StoredResource | undefined {
    return vms().find(
      (vm) =>
        vm.deletingUntil === undefined &&
        (vm.tags[REF_TAG] === ref || lower(vm.name) === lower(`grafana-${ref}`)),
    );
  }

  function vms(): StoredResource[] {
    return [...resources.values()].filter((r) => isType(r, VM_TYPE));
  }

  function vmNicIds(vm: StoredResource): string[] {
    const nics = asRecord(vm.properties.networkProfile)?.networkInterfaces;
    return (Array.isArray(nics) ? nics : [])
      .map((n) => asString(asRecord(n)?.id))
      .filter((id): id is string => id !== undefined);
  }

  function vmDiskIds(vm: StoredResource): string[] {
    const storage = asRecord(vm.properties.storageProfile);
    const ids: Array<string | undefined> = [
      asString(asRecord(asRecord(storage?.osDisk)?.managedDisk)?.id),
    ];
    const data = storage?.dataDisks;
    for (const d of Array.isArray(data) ? data : []) {
      ids.push(asString(asRecord(asRecord(d)?.managedDisk)?.id));
    }
    return ids.filter((id): id is string => id !== undefined);
  }

  function nicOwner(nic: StoredResource): StoredResource | undefined {
    return vms().find((vm) => vmNicIds(vm).some((id) => lower(id) === lower(nic.id)));
  }

  function diskOwner(disk: StoredResource): StoredResource | undefined {
    return vms().find((vm) => vmDiskIds(vm).some((id) => lower(id) === lower(disk.id)));
  }

  function renderProperties(r: StoredResource, expand?: string): Record<string, unknown> {
    const props: Record<string, unknown> = structuredClone(r.properties);
    props.provisioningState =
      r.deletingUntil !== undefined ? "Deleting" : (props.provisioningState ?? "Succeeded");
    if (isType(r, NIC_TYPE)) {
      const vm = nicOwner(r);
      if (vm) props.virtualMachine = { id: vm.id };
      else delete props.virtualMachine;
    } else if (isType(r, DISK_TYPE)) {
      props.diskState = diskOwner(r) ? "Attached" : "Unattached";
    } else if (
      isType(r, VM_TYPE) &&
      expand !== undefined &&
      lower(expand).includes("instanceview")
    ) {
      props.instanceView = {
        computerName: asString(asRecord(props.osProfile)?.computerName) ?? r.name,
        statuses: [
          {
            code: `ProvisioningState/${lower(String(props.provisioningState))}`,
            level: "Info",
            displayStatus: `Provisioning ${lower(String(props.provisioningState))}`,
          },
          { code: "PowerState/running", level: "Info", displayStatus: "VM running" },
        ],
      };
    } else if (isType(r, ZONE_TYPE)) {
      props.numberOfRecordSets = [...recordSets.values()].filter(
        (rs) => rs.zoneKey === lower(r.id),
      ).length;
    }
    return props;
  }

  function renderResource(r: StoredResource, expand?: string): Record<string, unknown> {
    const out: Record<string, unknown> = {
      id: r.id,
      name: r.name,
      type: r.type,
      location: r.location,
      tags: { ...r.tags },
      properties: renderProperties(r, expand),
    };
    if (isType(r, DISK_TYPE)) {
      const vm = diskOwner(r);
      if (vm) out.managedBy = vm.id;
      out.sku = { name: "Premium_LRS", tier: "Premium" };
    }
    if (isType(r, SNAPSHOT_TYPE)) out.sku = { name: "Standard_LRS", tier: "Standard" };
    if (isType(r, NIC_TYPE) || isType(r, ZONE_TYPE)) out.etag = `W/"${fnv1a(r.id).toString(16)}"`;
    return out;
  }

  function toSimResource(r: StoredResource): SimResource {
    return {
      id: r.id,
      type: r.type,
      name: r.name,
      resourceGroup: r.resourceGroup,
      location: r.location,
      tags: { ...r.tags },
      properties: renderProperties(r),
    };
  }

  function defaultProperties(type: string, name: string): Record<string, unknown> {
    switch (canonicalType(type)) {
      case VM_TYPE:
        return {
          vmId: randomUUID(),
          hardwareProfile: { vmSize: "Standard_B2s" },
          storageProfile: { dataDisks: [] },
          osProfile: { computerName: name, adminUsername: "supafana" },
          networkProfile: { networkInterfaces: [] },
          timeCreated: nowIso(),
        };
      case NIC_TYPE:
        return { resourceGuid: randomUUID(), ipConfigurations: [], primary: true };
      case DISK_TYPE:
        return { diskSizeGB: 32, creationData: { createOption: "Empty" }, timeCreated: nowIso() };
      case ZONE_TYPE:
        return {
          maxNumberOfRecordSets: 10000,
          maxNumberOfRecordsPerRecordSet: null,
          nameServers: [
            "ns1-01.azure-dns.com.",
            "ns2-01.azure-dns.net.",
            "ns3-01.azure-dns.org.",
            "ns4-01.azure-dns.info.",
          ],
          zoneType: "Public",
        };
      default:
        return {};
    }
  }

  function plant(r: {
    resourceGroup: string;
    type: string;
    name: string;
    location?: string;
    tags?: Record<string, string>;
    properties?: Record<string, unknown>;
  }): StoredResource {
    const type = canonicalType(r.type);
    if (!/^[^/]+\/[^/]+$/.test(type)) {
      throw new Error(`resource type must look like "Namespace/type", got "${r.type}"`);
    }
    const id = resourceId(r.resourceGroup, type, r.name);
    const stored: StoredResource = {
      id,
      type,
      name: r.name,
      resourceGroup: r.resourceGroup,
      location: r.location ?? (type === ZONE_TYPE ? "global" : defaultLocation),
      tags: { ...(r.tags ?? {}) },
      properties: { ...defaultProperties(type, r.name), ...(r.properties ?? {}) },
      createdAt: clock(),
    };
    resources.set(lower(id), stored);
    return stored;
  }

  function upsert(
    rg: string,
    type: string,
    name: string,
    location: string,
    tags: Record<string, string>,
    build: (previous: Record<string, unknown> | undefined) => Record<string, unknown>,
  ): StoredResource {
    const id = resourceId(rg, type, name);
    const existing = resources.get(lower(id));
    if (existing) {
      existing.tags = { ...tags };
      existing.properties = build(existing.properties);
      delete existing.deletingUntil;
      return existing;
    }
    const created: StoredResource = {
      id,
      type,
      name,
      resourceGroup: rg,
      location,
      tags: { ...tags },
      properties: build(undefined),
      createdAt: clock(),
    };
    resources.set(lower(id), created);
    return created;
  }

  // ----- deployments --------------------------------------------------------------------------

  function param(d: StoredDeployment, name: string): unknown {
    return Object.entries(d.effective).find(([k]) => lower(k) === lower(name))?.[1];
  }

  /** What template expressions see of a resource group: the simulated resources. */
  function expressionContext(rg: string): ExpressionContext {
    return {
      subscriptionId: sub,
      resourceGroup: rg,
      location: defaultLocation,
      lookup: (id) => {
        const r = resources.get(lower(id));
        return r
          ? {
              id: r.id,
              name: r.name,
              type: r.type,
              location: r.location,
              tags: r.tags,
              properties: r.properties,
            }
          : undefined;
      },
    };
  }

  function allocateIp(ref: string): string | undefined {
    const known = ipByRef.get(ref);
    if (known !== undefined) return known;
    // Hosts .4-.254: Azure reserves the first four addresses of a subnet and the last one.
    const start = fnv1a(ref) % 251;
    for (let i = 0; i < 251; i++) {
      const host = 4 + ((start + i) % 251);
      if (usedHosts.has(host)) continue;
      usedHosts.add(host);
      const ip = `${subnetPrefix}${host}`;
      ipByRef.set(ref, ip);
      return ip;
    }
    return undefined;
  }

  /** What the Grafana host template creates, in place when it already exists (Incremental). */
  function materialize(d: StoredDeployment): DeploymentRun["outputs"] {
    const run = d.run;
    const rg = d.resourceGroup;
    const ref = asString(param(d, "projectRef")) ?? "";
    const vmName = asString(param(d, "vmName")) ?? `grafana-${ref}`;
    const location = asString(param(d, "location")) ?? defaultLocation;
    const tags: Record<string, string> = {};
    for (const [k, v] of Object.entries(asRecord(param(d, "tags")) ?? {})) {
      tags[k] = typeof v === "string" ? v : JSON.stringify(v);
    }
    tags[REF_TAG] = ref;
    const ip = allocateIp(ref);
    if (ip === undefined) {
      run.failure = {
        code: "SubnetIsFull",
        message: `Subnet with prefix ${subnetPrefix}0 has no free address left for ${vmName}-nic.`,
      };
      return undefined;
    }
    const vmSize = asString(param(d, "vmSize")) ?? "Standard_B2s";
    const dataSize = param(d, "dataDiskSizeGB");
    const dataDiskSizeGB = typeof dataSize === "number" ? dataSize : 32;
    const subnetId =
      asString(param(d, "subnetId")) ??
      `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.Network/virtualNetworks/supafana-vnet/subnets/grafana`;
    const nicName = `${vmName}-nic`;
    const osDiskName = `${vmName}-osdisk`;
    const dataDiskName = `${vmName}-data`;
    // An existing data disk is attached as it is. A missing one is created empty, or as a copy of
    // `dataDiskSnapshotId`, which must exist (else the deployment fails like ARM's, creating nothing).
    const existingData = resources.get(lower(resourceId(rg, DISK_TYPE, dataDiskName)));
    const snapshotId = asString(param(d, "dataDiskSnapshotId")) ?? "";
    let snapshot: StoredResource | undefined;
    if (!existingData && snapshotId !== "") {
      snapshot = resources.get(lower(snapshotId));
      if (!snapshot || snapshot.deletingUntil !== undefined || !isType(snapshot, SNAPSHOT_TYPE)) {
        run.failure = {
          code: "NotFound",
          message: `Resource ${snapshotId} is not found. It is the source (creationData.sourceResourceId) of disk '${dataDiskName}'.`,
          target: dataDiskName,
        };
        return undefined;
      }
    }
    const nic = upsert(rg, NIC_TYPE, nicName, location, tags, (prev) => ({
      resourceGuid: prev?.resourceGuid ?? randomUUID(),
      macAddress: prev?.macAddress ?? macFor(ref),
      primary: true,
      enableAcceleratedNetworking: false,
      enableIPForwarding: false,
      nicType: "Standard",
      ipConfigurations: [
        {
          id: `${resourceId(rg, NIC_TYPE, nicName)}/ipConfigurations/ipconfig1`,
          name: "ipconfig1",
          type: "Microsoft.Network/networkInterfaces/ipConfigurations",
          properties: {
            provisioningState: "Succeeded",
            privateIPAddress: ip,
            privateIPAllocationMethod: "Static",
            privateIPAddressVersion: "IPv4",
            subnet: { id: subnetId },
            primary: true,
          },
        },
      ],
    }));
    const osDisk = upsert(rg, DISK_TYPE, osDiskName, location, tags, (prev) => ({
      osType: "Linux",
      hyperVGeneration: "V2",
      diskSizeGB: 30,
      creationData: { createOption: "FromImage" },
      timeCreated: prev?.timeCreated ?? nowIso(),
      uniqueId: prev?.uniqueId ?? randomUUID(),
    }));
    const dataDisk = upsert(rg, DISK_TYPE, dataDiskName, location, tags, (prev) => {
      // An Incremental PUT with unchanged creationData leaves an existing disk (and its data) be.
      if (prev) return prev;
      const snapshotSize = snapshot?.properties.diskSizeGB;
      return {
        diskSizeGB: Math.max(
          dataDiskSizeGB,
          typeof snapshotSize === "number" ? snapshotSize : dataDiskSizeGB,
        ),
        creationData: snapshot
          ? {
              createOption: "Copy",
              sourceResourceId: snapshot.id,
              ...(typeof snapshot.properties.uniqueId === "string"
                ? { sourceUniqueId: snapshot.properties.uniqueId }
                : {}),
            }
          : { createOption: "Empty" },
        timeCreated: nowIso(),
        uniqueId: randomUUID(),
      };
    });
    const attachedSize = dataDisk.properties.diskSizeGB;
    const vm = upsert(rg, VM_TYPE, vmName, location, tags, (prev) => ({
      vmId: prev?.vmId ?? randomUUID(),
      timeCreated: prev?.timeCreated ?? nowIso(),
      hardwareProfile: { vmSize },
      storageProfile: {
        imageReference: {
          publisher: "Canonical",
          offer: "ubuntu-24_04-lts",
          sku: "server",
          version: "latest",
        },
        osDisk: {
          osType: "Linux",
          name: osDiskName,
          createOption: "FromImage",
          caching: "ReadWrite",
          managedDisk: { id: osDisk.id, storageAccountType: "Premium_LRS" },
          // As the template says: the OS disk goes with the VM, the data disk and NIC stay.
          deleteOption: "Delete",
          diskSizeGB: 30,
        },
        dataDisks: [
          {
            lun: 0,
            name: dataDiskName,
            createOption: "Attach",
            caching: "ReadOnly",
            managedDisk: { id: dataDisk.id, storageAccountType: "Premium_LRS" },
            deleteOption: "Detach",
            diskSizeGB: typeof attachedSize === "number" ? attachedSize : dataDiskSizeGB,
            toBeDetached: false,
          },
        ],
      },
      osProfile: {
        computerName: vmName,
        adminUsername: asString(param(d, "adminUsername")) ?? "supafana",
        linuxConfiguration: { disablePasswordAuthentication: true, provisionVMAgent: true },
        secrets: [],
      },
      networkProfile: {
        networkInterfaces: [{ id: nic.id, properties: { primary: true, deleteOption: "Detach" } }],
      },
    }));
    run.outputResources = [vm.id, nic.id, osDisk.id, dataDisk.id];
    // The template's declared outputs, evaluated against what was just created.
    try {
      return evaluateOutputs(d.template, d.effective, expressionContext(rg));
    } catch (err) {
      if (!(err instanceof TemplateExpressionError)) throw err;
      run.failure = { code: "InvalidTemplate", message: err.message };
      return undefined;
    }
  }

  function finish(d: StoredDeployment, now: number): void {
    const run = d.run;
    if (!run.failure) run.outputs = materialize(d);
    run.endedAt = now;
    if (run.failure) {
      run.state = "Failed";
      run.error = {
        code: "DeploymentFailed",
        target: d.id,
        message:
          "At least one resource deployment operation failed. Please list deployment operations for details. Please see https://aka.ms/arm-deployment-operations for usage details.",
        details: [run.failure],
      };
      delete run.outputs;
    } else {
      run.state = "Succeeded";
    }
  }

  /** Every template parameter with its effective value and declared type; secure ones without value. */
  function renderParameters(d: StoredDeployment): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [k, value] of Object.entries(d.effective)) {
      const declared = d.template.parameters[k]?.type;
      const given = asRecord(
        Object.entries(d.parameters).find(([g]) => lower(g) === lower(k))?.[1],
      );
      if (
        (declared !== undefined && isSecureType(declared)) ||
        secureParameters.has(lower(k)) ||
        given?.reference !== undefined
      ) {
        out[k] = {
          type:
            declared !== undefined && isSecureType(declared)
              ? displayType(declared)
              : "SecureString",
        };
      } else {
        out[k] = { type: declared !== undefined ? displayType(declared) : jsonType(value), value };
      }
    }
    return out;
  }

  function renderDeployment(d: StoredDeployment): Record<string, unknown> {
    const run = d.run;
    const properties: Record<string, unknown> = {
      ...(d.templateLink ? { templateLink: d.templateLink } : {}),
      parameters: renderParameters(d),
      mode: d.mode,
      provisioningState: run.state,
      timestamp: nowIso(run.endedAt ?? run.startedAt),
      duration: isoDuration((run.endedAt ?? clock()) - run.startedAt),
      correlationId: run.correlationId,
      templateHash: String(fnv1a(JSON.stringify(d.templateLink ?? {}))),
      dependencies: [],
    };
    if (run.state === "Succeeded") {
      properties.outputs = run.outputs ?? {};
      properties.outputResources = (run.outputResources ?? []).map((id) => ({ id }));
    }
    if (run.state === "Failed" && run.error) properties.error = run.error;
    return {
      id: d.id,
      name: d.name,
      type: DEPLOYMENT_TYPE,
      ...(d.tags ? { tags: d.tags } : {}),
      properties,
    };
  }

  function toSimDeployment(d: StoredDeployment): SimDeployment {
    const templateLinkId = asString(d.templateLink?.id) ?? asString(d.templateLink?.uri);
    return {
      id: d.id,
      name: d.name,
      resourceGroup: d.resourceGroup,
      mode: d.mode,
      ...(templateLinkId !== undefined ? { templateLinkId } : {}),
      parameters: structuredClone(d.parameters),
      ...(d.tags ? { tags: { ...d.tags } } : {}),
      provisioningState: d.run.state,
      ...(d.run.outputs && d.run.state === "Succeeded"
        ? { outputs: structuredClone(d.run.outputs) }
        : {}),
      ...(d.run.error && d.run.state === "Failed" ? { error: structuredClone(d.run.error) } : {}),
      puts: d.puts,
      history: structuredClone(d.history),
    };
  }

  /** Moves time-driven state forward; called before every request and every inspection. */
  function advance(now = clock()): void {
    for (const d of deployments.values()) {
      const run = d.run;
      if (run.state !== "Accepted" && run.state !== "Running") continue;
      if (now >= run.completeAt) finish(d, now);
      else run.state = "Running";
    }
    for (const [key, r] of resources) {
      if (r.deletingUntil !== undefined && r.deletingUntil <= now) dropResource(key);
    }
    for (const op of asyncOps.values()) {
      if (op.status === "InProgress" && op.doneAt !== undefined && op.doneAt <= now) {
        op.status = "Succeeded";
        op.endTime = nowIso(op.doneAt);
      }
    }
  }

  // ----- long-running operation URLs ------------------------------------------------------------

  function publicBase(req: SimRequest): string {
    const host = req.headers.host;
    return host === undefined || isLoopbackHost(host) ? publicEndpoint : `https://${host}`;
  }

  function retryAfter(): Record<string, string> {
    return { "Retry-After": lroRetryAfter };
  }

  function newOp(kind: AsyncOp["kind"]): AsyncOp {
    const op: AsyncOp = { id: randomUUID(), kind, status: "InProgress", startTime: nowIso() };
    asyncOps.set(op.id, op);
    return op;
  }

  /** Headers of a 202 for an operation of a resource provider (Compute/Network style). */
  function providerOpHeaders(
    req: SimRequest,
    namespace: string,
    location: string,
    op: AsyncOp,
    apiVersion: string,
  ): Record<string, string> {
    const base = `${publicBase(req)}/subscriptions/${sub}/providers/${namespace}/locations/${location}`;
    const v = encodeURIComponent(apiVersion);
    const isNetwork = lower(namespace) === "microsoft.network";
    return {
      "Azure-AsyncOperation": `${base}/operations/${op.id}?api-version=${v}`,
      Location: isNetwork
        ? `${base}/operationResults/${op.id}?api-version=${v}`
        : `${base}/operations/${op.id}?monitor=true&api-version=${v}`,
      ...retryAfter(),
    };
  }

  /** Headers of a 202 for ARM's own operations (generic deletes, deployment deletes). */
  function armOpHeaders(req: SimRequest, op: AsyncOp, apiVersion: string): Record<string, string> {
    return {
      Location: `${publicBase(req)}/subscriptions/${sub}/operationresults/${op.id}?api-version=${encodeURIComponent(apiVersion)}`,
      ...retryAfter(),
    };
  }

  function opStatusBody(op: AsyncOp): Record<string, unknown> {
    return {
      name: op.id,
      status: op.status,
      startTime: op.startTime,
      ...(op.endTime !== undefined ? { endTime: op.endTime } : {}),
      ...(op.output ? { properties: { output: op.output } } : {}),
      ...(op.kind === "create" && op.resourceKey !== undefined && resources.has(op.resourceKey)
        ? {
            properties: { output: renderResource(resources.get(op.resourceKey) as StoredResource) },
          }
        : {}),
      ...(op.error ? { error: op.error } : {}),
    };
  }

  /** The `Location` side of an operation: 202 while running, then the result. */
  function opResult(req: SimRequest, op: AsyncOp): SimResponse {
    const selfUrl = `${publicBase(req)}${req.path}?${req.query.toString()}`;
    if (op.status === "InProgress") return noContent(202, { Location: selfUrl, ...retryAfter() });
    if (op.status === "Failed") {
      const error = op.error ?? { code: "InternalOperationError", message: "Operation failed." };
      return json(400, { error });
    }
    if (op.kind === "runCommand") return json(200, op.output ?? { value: [] });
    if (op.kind === "create") {
      const created = op.resourceKey !== undefined ? resources.get(op.resourceKey) : undefined;
      return created ? json(200, renderResource(created)) : noContent(204);
    }
    return noContent(204);
  }

  // ----- request handling -------------------------------------------------------------------

  function takeFault(req: SimRequest): ActiveFault | undefined {
    const fault = faults.find(
      (f) =>
        f.remaining > 0 &&
        (f.method === undefined || lower(f.method) === lower(req.method)) &&
        (f.pathIncludes === undefined || lower(req.path).includes(lower(f.pathIncludes))),
    );
    if (!fault) return undefined;
    fault.remaining -= 1;
    if (fault.remaining <= 0) faults.splice(faults.indexOf(fault), 1);
    return fault;
  }

  async function applyFault(fault: ActiveFault, closing: AbortSignal): Promise<Handled> {
    if (fault.status === 429) {
      const seconds = fault.retryAfterSeconds ?? 1;
      return armError(
        429,
        "TooManyRequests",
        `Number of requests for subscription '${sub}' exceeded the limit. Please try again after '${seconds}' seconds.`,
        { "Retry-After": String(seconds) },
      );
    }
    if (fault.status === 500) {
      return armError(
        500,
        "InternalServerError",
        "Encountered internal server error. Diagnostic information: simulated fault.",
      );
    }
    await new Promise<void>((resolve) => {
      if (closing.aborted) {
        resolve();
        return;
      }
      const timer = setTimeout(resolve, fault.timeoutMs ?? 5000);
      closing.addEventListener(
        "abort",
        () => {
          clearTimeout(timer);
          resolve();
        },
        { once: true },
      );
    });
    return DROP_CONNECTION;
  }

  async function handle(req: SimRequest, closing: AbortSignal): Promise<Handled> {
    advance();
    const apiVersion = req.query.get("api-version") ?? undefined;
    const record: SimRequestRecord = {
      method: req.method,
      path: req.path.replace(/\/{2,}/g, "/"),
      ...(/\/{2,}/.test(req.path) ? { rawPath: req.path } : {}),
      query: req.query.toString(),
      ...(apiVersion !== undefined ? { apiVersion } : {}),
      body: parseBody(req),
      at: nowIso(),
    };
    requestLog.push(record);
    countDeploymentPut(req.method, record.path, record.body);
    const out = await respond(req, apiVersion, closing);
    if (out === DROP_CONNECTION) {
      record.status = 0;
      return out;
    }
    record.status = out.status;
    const requestId = randomUUID();
    const clientRequestId = req.headers["x-ms-client-request-id"];
    out.headers = {
      "x-ms-request-id": requestId,
      "x-ms-correlation-request-id":
        typeof clientRequestId === "string" ? clientRequestId : requestId,
      ...(out.headers ?? {}),
    };
    if (req.method === "HEAD") delete out.body;
    return out;
  }

  function countDeploymentPut(method: string, path: string, body: unknown): void {
    if (method !== "PUT") return;
    const segs = path.split("/").filter(Boolean);
    const at = match(segs, [
      "subscriptions",
      "*",
      "resourcegroups",
      "*",
      "providers",
      "microsoft.resources",
      "deployments",
      "*",
    ]);
    if (!at) return;
    const operation = asString(asRecord(asRecord(body)?.tags)?.[OPERATION_TAG]) ?? "";
    const key = `${lower(at[1] ?? "")}/${lower(at[2] ?? "")}|${operation}`;
    putsByOperation.set(key, (putsByOperation.get(key) ?? 0) + 1);
  }

  async function respond(
    req: SimRequest,
    apiVersion: string | undefined,
    closing: AbortSignal,
  ): Promise<Handled> {
    const auth = req.headers.authorization;
    if (typeof auth !== "string" || !/^Bearer\s+\S+/i.test(auth)) {
      return armError(
        401,
        "AuthenticationFailed",
        "Authentication failed. The 'Authorization' header is missing or is not a Bearer token.",
      );
    }
    const fault = takeFault(req);
    if (fault) return applyFault(fault, closing);
    if (apiVersion === undefined || apiVersion === "") {
      return armError(
        400,
        "MissingApiVersionParameter",
        "The api-version query parameter (?api-version=) is required for all requests.",
      );
    }
    let segs: string[];
    try {
      segs = req.path
        .split("/")
        .filter((s) => s !== "")
        .map((s) => decodeURIComponent(s));
    } catch {
      return armError(400, "InvalidRequestUri", `The request URI '${req.path}' is not valid.`);
    }
    if (lower(segs[0] ?? "") !== "subscriptions" || segs[1] === undefined) {
      return notFound(req);
    }
    if (lower(segs[1]) !== lower(sub)) {
      return armError(
        404,
        "SubscriptionNotFound",
        `The subscription '${segs[1]}' could not be found.`,
      );
    }
    return route(req, segs.slice(2), apiVersion);
  }

  function notFound(req: SimRequest): SimResponse {
    return armError(
      404,
      "NotFound",
      `No route for ${req.method} ${req.path} in the ARM simulator.`,
    );
  }

  function methodNotAllowed(req: SimRequest): SimResponse {
    return armError(
      405,
      "MethodNotAllowed",
      `The HTTP method '${req.method}' is not supported at '${req.path}'.`,
    );
  }

  function route(req: SimRequest, rest: string[], apiVersion: string): Handled {
    const m = req.method;
    let c: string[] | undefined;

    if (match(rest, ["resources"])) {
      return m === "GET" ? listResources(req, undefined) : methodNotAllowed(req);
    }
    if ((c = match(rest, ["operationresults", "*"]))) {
      const op = asyncOps.get(c[0] ?? "");
      return op ? opResult(req, op) : notFound(req);
    }
    if ((c = match(rest, ["providers", "*", "locations", "*", "*", "*"]))) {
      const kind = lower(rest[4] ?? "");
      const op = asyncOps.get(c[3] ?? "");
      if (!op || (kind !== "operations" && kind !== "operationresults")) return notFound(req);
      if (m !== "GET") return methodNotAllowed(req);
      if (kind === "operationresults" || req.query.get("monitor") === "true")
        return opResult(req, op);
      return json(200, opStatusBody(op));
    }
    if ((c = match(rest, ["resourcegroups", "*", "resources"]))) {
      return m === "GET" ? listResources(req, c[0]) : methodNotAllowed(req);
    }
    const deploymentsBase = [
      "resourcegroups",
      "*",
      "providers",
      "microsoft.resources",
      "deployments",
    ];
    if ((c = match(rest, deploymentsBase))) {
      return m === "GET" ? listDeployments(c[0] ?? "") : methodNotAllowed(req);
    }
    if ((c = match(rest, [...deploymentsBase, "*"]))) {
      const [rg = "", name = ""] = c;
      if (m === "PUT") return putDeployment(req, rg, name, apiVersion);
      if (m === "GET" || m === "HEAD") return getDeployment(m, rg, name);
      if (m === "DELETE") return deleteDeployment(req, rg, name, apiVersion);
      return methodNotAllowed(req);
    }
    if ((c = match(rest, [...deploymentsBase, "*", "operationstatuses", "*"]))) {
      const run = deploymentOps.get(c[2] ?? "");
      if (!run) return notFound(req);
      return json(200, {
        status: run.state,
        ...(run.state === "Failed" && run.error ? { error: run.error } : {}),
      });
    }
    const zoneBase = ["resourcegroups", "*", "providers", "microsoft.network", "dnszones", "*"];
    if ((c = match(rest, [...zoneBase, "*"]))) {
      return m === "GET"
        ? listRecordSets(req, c[0] ?? "", c[1] ?? "", c[2] ?? "")
        : methodNotAllowed(req);
    }
    if ((c = match(rest, [...zoneBase, "*", "*"]))) {
      const [rg = "", zone = "", type = "", name = ""] = c;
      return recordSet(req, rg, zone, type, name);
    }
    const vmBase = [
      "resourcegroups",
      "*",
      "providers",
      "microsoft.compute",
      "virtualmachines",
      "*",
    ];
    if ((c = match(rest, [...vmBase, "runcommand"]))) {
      return m === "POST"
        ? runCommand(req, c[0] ?? "", c[1] ?? "", apiVersion)
        : methodNotAllowed(req);
    }
    if (match(rest, ["providers", "microsoft.compute", "snapshots"])) {
      return m === "GET" ? listSnapshots(undefined) : methodNotAllowed(req);
    }
    if ((c = match(rest, ["resourcegroups", "*", "providers", "microsoft.compute", "snapshots"]))) {
      return m === "GET" ? listSnapshots(c[0] ?? "") : methodNotAllowed(req);
    }
    if ((c = match(rest, ["resourcegroups", "*", "providers", "*", "*", "*"]))) {
      const [rg = "", ns = "", type = "", name = ""] = c;
      const fullType = canonicalType(`${ns}/${type}`);
      if (m === "GET" || m === "HEAD") return getResource(req, rg, fullType, name);
      if (m === "DELETE") return deleteResource(req, rg, fullType, name, apiVersion);
      if (m === "PUT" && fullType === ZONE_TYPE) return putZone(req, rg, name);
      if (m === "PUT" && fullType === SNAPSHOT_TYPE) return putSnapshot(req, rg, name, apiVersion);
      return methodNotAllowed(req);
    }
    return notFound(req);
  }

  // ----- generic resources --------------------------------------------------------------------

  function resourceNotFound(rg: string, type: string, name: string): SimResponse {
    return armError(
      404,
      "ResourceNotFound",
      `The Resource '${type}/${name}' under resource group '${rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
    );
  }

  function getResource(req: SimRequest, rg: string, type: string, name: string): SimResponse {
    const r = resources.get(lower(resourceId(rg, type, name)));
    if (!r) return resourceNotFound(rg, type, name);
    if (req.method === "HEAD") return noContent(204);
    return json(200, renderResource(r, req.query.get("$expand") ?? undefined));
  }

  function deleteResource(
    req: SimRequest,
    rg: string,
    type: string,
    name: string,
    apiVersion: string,
  ): SimResponse {
    const key = lower(resourceId(rg, type, name));
    const r = resources.get(key);
    if (!r) return noContent(204);
    if (isType(r, NIC_TYPE)) {
      const vm = nicOwner(r);
      if (vm) {
        return armError(
          400,
          "NicInUse",
          `Network Interface ${r.id} is used by existing resource ${vm.id}. In order to delete the network interface, it must be dissociated from the resource. To learn more, see aka.ms/deletenic.`,
        );
      }
    }
    if (isType(r, DISK_TYPE)) {
      const vm = diskOwner(r);
      if (vm) {
        return armError(409, "OperationNotAllowed", `Disk ${r.name} is attached to VM ${vm.id}.`);
      }
    }
    const op = newOp("delete");
    if (deleteDelayMs === 0) {
      dropResource(key);
      op.status = "Succeeded";
      op.endTime = nowIso();
    } else {
      // A repeated DELETE joins the delete in progress: Azure does not restart it.
      r.deletingUntil ??= clock() + deleteDelayMs;
      op.doneAt = r.deletingUntil;
      // What goes with a VM is "Deleting" with it.
      if (isType(r, VM_TYPE)) {
        for (const k of deletedWithVm(r)) {
          const along = resources.get(k);
          if (along) along.deletingUntil ??= r.deletingUntil;
        }
      }
    }
    const ns = type.split("/")[0] ?? "";
    const providerStyle = ["microsoft.compute", "microsoft.network"].includes(lower(ns));
    return noContent(
      202,
      providerStyle
        ? providerOpHeaders(req, ns, r.location, op, apiVersion)
        : armOpHeaders(req, op, apiVersion),
    );
  }

  function listResources(req: SimRequest, rg: string | undefined): SimResponse {
    const filterText = req.query.get("$filter");
    const clauses = filterText === null ? [] : parseFilter(filterText);
    if (clauses === undefined) {
      return armError(
        400,
        "InvalidFilterInQueryString",
        `Invalid $filter '${filterText ?? ""}' specified in the query string.`,
      );
    }
    const known = new Set(["tagname", "tagvalue", "resourcetype", "name", "location"]);
    const unknown = clauses.find((cl) => !known.has(cl.field));
    if (unknown) {
      return armError(
        400,
        "InvalidFilterInQueryString",
        `Invalid $filter '${filterText ?? ""}' specified in the query string: '${unknown.field}' is not supported.`,
      );
    }
    const tagName = clauses.find((cl) => cl.field === "tagname")?.value;
    const tagValue = clauses.find((cl) => cl.field === "tagvalue")?.value;
    if (tagValue !== undefined && tagName === undefined) {
      return armError(
        400,
        "InvalidFilterInQueryString",
        "A tagValue filter requires a tagName filter.",
      );
    }
    const matching = [...resources.values()].filter((r) => {
      if (rg !== undefined && lower(r.resourceGroup) !== lower(rg)) return false;
      for (const cl of clauses) {
        if (cl.field === "resourcetype" && lower(r.type) !== lower(cl.value)) return false;
        if (cl.field === "name" && lower(r.name) !== lower(cl.value)) return false;
        if (cl.field === "location" && lower(r.location) !== lower(cl.value)) return false;
      }
      if (tagName !== undefined) {
        const tag = Object.entries(r.tags).find(([k]) => lower(k) === lower(tagName));
        if (!tag) return false;
        if (tagValue !== undefined && tag[1] !== tagValue) return false;
      }
      return true;
    });
    const top = Number(req.query.get("$top") ?? "");
    const skip = Number(req.query.get("$skiptoken") ?? "0") || 0;
    const pageSize = Number.isInteger(top) && top > 0 ? top : matching.length;
    const page = matching.slice(skip, skip + pageSize);
    const expand = lower(req.query.get("$expand") ?? "")
      .split(",")
      .map((e) => e.trim());
    const body: Record<string, unknown> = {
      value: page.map((r) => ({
        id: r.id,
        name: r.name,
        type: r.type,
        location: r.location,
        tags: { ...r.tags },
        ...(isType(r, DISK_TYPE) && diskOwner(r) ? { managedBy: diskOwner(r)?.id } : {}),
        ...(expand.includes("createdtime") ? { createdTime: nowIso(r.createdAt) } : {}),
      })),
    };
    if (skip + pageSize < matching.length) {
      const q = new URLSearchParams(req.query);
      q.set("$skiptoken", String(skip + pageSize));
      body.nextLink = `${publicBase(req)}${req.path}?${q.toString()}`;
    }
    return json(200, body);
  }

  // ----- snapshots ----------------------------------------------------------------------------

  function listSnapshots(rg: string | undefined): SimResponse {
    const value = [...resources.values()]
      .filter((r) => isType(r, SNAPSHOT_TYPE))
      .filter((r) => rg === undefined || lower(r.resourceGroup) === lower(rg))
      .map((r) => renderResource(r));
    return json(200, { value });
  }

  /**
   * PUT of a snapshot (`creationData: { createOption: "Copy", sourceResourceId }` of a disk), as
   * the Compute provider answers it: 202 with an async operation, the snapshot ready at once. A
   * PUT of an existing snapshot from the same source only updates its tags; another source is
   * refused as ARM does (creationData cannot change).
   */
  function putSnapshot(req: SimRequest, rg: string, name: string, apiVersion: string): SimResponse {
    const body = asRecord(parseBody(req));
    if (!body) {
      return armError(400, "InvalidRequestContent", "The request content was invalid.");
    }
    const location = asString(body.location);
    if (location === undefined || location === "") {
      return armError(
        400,
        "LocationRequired",
        "The location property is required for this definition.",
      );
    }
    const props = asRecord(body.properties) ?? {};
    const creation = asRecord(props.creationData);
    const createOption = asString(creation?.createOption);
    if (createOption === undefined) {
      return armError(
        400,
        "InvalidParameter",
        "Required parameter 'creationData.createOption' is missing (null).",
      );
    }
    if (lower(createOption) !== "copy") {
      return armError(
        400,
        "BadRequest",
        `Snapshot createOption '${createOption}' is not supported by the ARM simulator (Copy only).`,
      );
    }
    const sourceId = asString(creation?.sourceResourceId);
    if (sourceId === undefined || sourceId === "") {
      return armError(
        400,
        "InvalidParameter",
        "Required parameter 'creationData.sourceResourceId' is missing (null).",
      );
    }
    if (props.incremental !== undefined && typeof props.incremental !== "boolean") {
      return armError(
        400,
        "InvalidParameter",
        `The value '${toText(props.incremental)}' of parameter 'incremental' is not valid.`,
      );
    }
    const incremental = props.incremental === true;
    const tagsIn = asRecord(body.tags) ?? {};
    const tags = Object.fromEntries(Object.entries(tagsIn).map(([k, v]) => [k, toText(v)]));
    const key = lower(resourceId(rg, SNAPSHOT_TYPE, name));
    const existing = resources.get(key);
    if (existing?.deletingUntil !== undefined) {
      return armError(409, "Conflict", `Snapshot ${name} is being deleted.`);
    }
    if (existing) {
      const before = asRecord(existing.properties.creationData);
      if (lower(asString(before?.sourceResourceId) ?? "") !== lower(sourceId)) {
        return armError(
          409,
          "PropertyChangeNotAllowed",
          "Changing property 'sourceResourceId' is not allowed.",
        );
      }
      if (existing.properties.incremental !== incremental) {
        return armError(
          409,
          "PropertyChangeNotAllowed",
          "Changing property 'incremental' is not allowed.",
        );
      }
      existing.tags = tags;
    } else {
      const source = resources.get(lower(sourceId));
      if (!source || source.deletingUntil !== undefined || !isType(source, DISK_TYPE)) {
        return armError(404, "NotFound", `Resource ${sourceId} is not found.`);
      }
      const size = source.properties.diskSizeGB;
      plant({
        resourceGroup: rg,
        type: SNAPSHOT_TYPE,
        name,
        location,
        tags,
        properties: {
          creationData: {
            createOption: "Copy",
            sourceResourceId: source.id,
            ...(typeof source.properties.uniqueId === "string"
              ? { sourceUniqueId: source.properties.uniqueId }
              : {}),
          },
          incremental,
          ...(typeof size === "number"
            ? { diskSizeGB: size, diskSizeBytes: size * 1024 ** 3 }
            : {}),
          uniqueId: randomUUID(),
          timeCreated: nowIso(),
          diskState: "Unattached",
          networkAccessPolicy: "AllowAll",
          publicNetworkAccess: "Enabled",
          completionPercent: 100,
        },
      });
    }
    const op = newOp("create");
    op.resourceKey = key;
    op.status = "Succeeded";
    op.endTime = nowIso();
    const stored = resources.get(key) as StoredResource;
    return json(
      existing ? 200 : 202,
      renderResource(stored),
      providerOpHeaders(req, "Microsoft.Compute", stored.location, op, apiVersion),
    );
  }

  // ----- deployments --------------------------------------------------------------------------

  function deploymentKey(rg: string, name: string): string {
    return lower(`${rg}/${name}`);
  }

  function listDeployments(rg: string): SimResponse {
    const value = [...deployments.values()]
      .filter((d) => lower(d.resourceGroup) === lower(rg))
      .map(renderDeployment);
    return json(200, { value });
  }

  function getDeployment(method: string, rg: string, name: string): SimResponse {
    const d = deployments.get(deploymentKey(rg, name));
    if (!d) {
      return armError(404, "DeploymentNotFound", `Deployment '${name}' could not be found.`);
    }
    if (method === "HEAD") return noContent(204);
    return json(200, renderDeployment(d));
  }

  function putDeployment(
    req: SimRequest,
    rg: string,
    name: string,
    apiVersion: string,
  ): SimResponse {
    const body = asRecord(parseBody(req));
    const props = asRecord(body?.properties);
    if (!body || !props) {
      return armError(
        400,
        "InvalidRequestContent",
        "The request content was invalid and could not be deserialized: 'Required property 'properties' not found in JSON.'",
      );
    }
    const mode = asString(props.mode);
    if (mode !== "Incremental" && mode !== "Complete") {
      return armError(
        400,
        "InvalidRequestContent",
        `The request content was invalid: the deployment mode '${toText(props.mode)}' is not valid; use 'Incremental' or 'Complete'.`,
      );
    }
    const templateLink = asRecord(props.templateLink);
    const hasTemplate =
      asRecord(props.template) !== undefined ||
      asString(templateLink?.id) !== undefined ||
      asString(templateLink?.uri) !== undefined;
    if (!hasTemplate) {
      return armError(
        400,
        "InvalidTemplateDeployment",
        "The deployment must have either a template or a templateLink with an id or uri.",
      );
    }
    const parameters = asRecord(props.parameters) ?? {};
    // Checked as ARM does, against the compiled template (an inline one, or the Grafana host's).
    let template: ArmTemplate;
    try {
      template =
        props.template !== undefined ? parseTemplate(props.template) : grafanaHostTemplate();
    } catch (err) {
      return armError(
        400,
        "InvalidTemplate",
        `Deployment template parse failed: '${String(err)}'.`,
      );
    }
    const checked = checkParameters(template, parameters, expressionContext(rg));
    if (!checked.ok) return json(400, { error: checked.error });
    const tagsIn = asRecord(body.tags);
    const tags = tagsIn
      ? Object.fromEntries(Object.entries(tagsIn).map(([k, v]) => [k, toText(v)]))
      : undefined;
    const key = deploymentKey(rg, name);
    const existing = deployments.get(key);
    const now = clock();
    const entry: SimDeploymentPut = {
      at: nowIso(now),
      status: 0,
      ...(asString(templateLink?.id) !== undefined
        ? { templateLinkId: asString(templateLink?.id) }
        : {}),
      parameters: structuredClone(parameters),
      ...(tags ? { tags } : {}),
    };
    if (existing && (existing.run.state === "Accepted" || existing.run.state === "Running")) {
      entry.status = 409;
      existing.history.push(entry);
      return armError(
        409,
        "DeploymentActive",
        `Unable to edit or replace deployment '${name}': previous deployment from '${nowIso(existing.run.startedAt)}' is still active (expiration time is '${nowIso(existing.run.startedAt + 14 * 86400_000)}'). Please see https://aka.ms/arm-deploy for usage details.`,
      );
    }
    const failureIndex = pendingFailures.findIndex((f) => name.includes(f.nameIncludes));
    const failure =
      failureIndex >= 0 ? pendingFailures.splice(failureIndex, 1)[0]?.error : undefined;
    const run: DeploymentRun = {
      opId: randomUUID().replaceAll("-", "").toUpperCase().slice(0, 16),
      state: "Accepted",
      startedAt: now,
      completeAt: now + deploymentDelayMs,
      correlationId: randomUUID(),
      ...(failure ? { failure } : {}),
    };
    entry.status = existing ? 200 : 201;
    const d: StoredDeployment = existing ?? {
      id: resourceId(rg, DEPLOYMENT_TYPE, name),
      name,
      resourceGroup: rg,
      mode,
      parameters,
      template,
      effective: checked.values,
      puts: 0,
      history: [],
      run,
    };
    d.mode = mode;
    d.parameters = parameters;
    d.template = template;
    d.effective = checked.values;
    if (templateLink) d.templateLink = templateLink;
    else delete d.templateLink;
    if (tags) d.tags = tags;
    else delete d.tags;
    d.run = run;
    d.puts += 1;
    d.history.push(entry);
    deployments.set(key, d);
    deploymentOps.set(run.opId, run);
    return json(entry.status, renderDeployment(d), {
      "Azure-AsyncOperation": `${publicBase(req)}/subscriptions/${sub}/resourcegroups/${d.resourceGroup}/providers/${DEPLOYMENT_TYPE}/${d.name}/operationStatuses/${run.opId}?api-version=${encodeURIComponent(apiVersion)}`,
      ...retryAfter(),
    });
  }

  function deleteDeployment(
    req: SimRequest,
    rg: string,
    name: string,
    apiVersion: string,
  ): SimResponse {
    const key = deploymentKey(rg, name);
    const d = deployments.get(key);
    if (!d) return noContent(204);
    if (d.run.state === "Accepted" || d.run.state === "Running") {
      return armError(
        409,
        "DeploymentActive",
        `Deployment '${name}' is still active and cannot be deleted. Cancel it first.`,
      );
    }
    deployments.delete(key);
    const op = newOp("delete");
    op.status = "Succeeded";
    op.endTime = nowIso();
    return noContent(202, armOpHeaders(req, op, apiVersion));
  }

  // ----- DNS ----------------------------------------------------------------------------------

  function zoneOf(rg: string, zone: string): StoredResource | undefined {
    const z = resources.get(lower(resourceId(rg, ZONE_TYPE, zone)));
    return z && z.deletingUntil === undefined ? z : undefined;
  }

  function zoneMissing(zone: string): SimResponse {
    return armError(
      404,
      "ParentResourceNotFound",
      `Can not perform requested operation on nested resource. Parent resource '${zone}' not found.`,
    );
  }

  function renderRecordSet(rs: StoredRecordSet): Record<string, unknown> {
    return {
      id: `${rs.zoneId}/A/${rs.name}`,
      name: rs.name,
      type: `${ZONE_TYPE}/A`,
      etag: rs.etag,
      properties: {
        ...(rs.metadata ? { metadata: rs.metadata } : {}),
        TTL: rs.ttl,
        fqdn: `${rs.name === "@" ? rs.zone : `${rs.name}.${rs.zone}`}.`,
        provisioningState: "Succeeded",
        targetResource: {},
        ARecords: rs.ips.map((ipv4Address) => ({ ipv4Address })),
      },
    };
  }

  function putZone(req: SimRequest, rg: string, zone: string): SimResponse {
    const existing = zoneOf(rg, zone);
    const body = asRecord(parseBody(req));
    const tags = asRecord(body?.tags);
    const z =
      existing ??
      plant({ resourceGroup: rg, type: ZONE_TYPE, name: lower(zone), location: "global" });
    if (tags) z.tags = Object.fromEntries(Object.entries(tags).map(([k, v]) => [k, toText(v)]));
    return json(existing ? 200 : 201, renderResource(z));
  }

  function listRecordSets(req: SimRequest, rg: string, zone: string, kind: string): SimResponse {
    const z = zoneOf(rg, zone);
    if (!z) return zoneMissing(zone);
    const k = lower(kind);
    if (k !== "recordsets" && k !== "all" && k !== "a") {
      return isKnownRecordType(k) ? json(200, { value: [] }) : notFound(req);
    }
    const suffix = req.query.get("$recordsetnamesuffix") ?? req.query.get("recordsetnamesuffix");
    const value = [...recordSets.values()]
      .filter((rs) => rs.zoneKey === lower(z.id))
      .filter((rs) => suffix === null || lower(rs.name).endsWith(lower(suffix)))
      .map(renderRecordSet);
    return json(200, { value });
  }

  function isKnownRecordType(t: string): boolean {
    return ["a", "aaaa", "caa", "cname", "mx", "ns", "ptr", "soa", "srv", "txt"].includes(t);
  }

  function preconditionFailed(header: string, current: string | undefined): SimResponse {
    return armError(
      412,
      "PreconditionFailed",
      `The condition '${header}' in the request was not satisfied. The current etag is '${current ?? "(none)"}'.`,
    );
  }

  function recordSet(
    req: SimRequest,
    rg: string,
    zone: string,
    type: string,
    name: string,
  ): SimResponse {
    const m = req.method;
    const z = zoneOf(rg, zone);
    if (!z) return zoneMissing(zone);
    if (lower(type) !== "a") {
      return isKnownRecordType(lower(type))
        ? armError(
            400,
            "BadRequest",
            `Record type '${type}' is not supported by the ARM simulator (A only).`,
          )
        : notFound(req);
    }
    const key = `${lower(z.id)}|a|${lower(name)}`;
    const existing = recordSets.get(key);
    const ifMatch = req.headers["if-match"];
    const ifNoneMatch = req.headers["if-none-match"];
    if (typeof ifMatch === "string" && ifMatch !== "") {
      if (!existing || (ifMatch !== "*" && ifMatch !== existing.etag)) {
        return preconditionFailed(`If-Match: ${ifMatch}`, existing?.etag);
      }
    }
    if (typeof ifNoneMatch === "string" && ifNoneMatch === "*" && existing && m === "PUT") {
      return preconditionFailed("If-None-Match: *", existing.etag);
    }

    if (m === "GET") {
      if (!existing) {
        return armError(
          404,
          "NotFound",
          `The resource record '${name}' does not exist in resource group '${rg}' of subscription '${sub}'.`,
        );
      }
      return json(200, renderRecordSet(existing), { ETag: existing.etag });
    }
    if (m === "DELETE") {
      if (!existing) return noContent(204);
      recordSets.delete(key);
      return noContent(200);
    }
    if (m !== "PUT" && m !== "PATCH") return methodNotAllowed(req);
    if (m === "PATCH" && !existing) {
      return armError(
        404,
        "NotFound",
        `The resource record '${name}' does not exist in resource group '${rg}' of subscription '${sub}'.`,
      );
    }
    const props = asRecord(asRecord(parseBody(req))?.properties);
    if (!props) {
      return armError(400, "BadRequest", "The request body must have a 'properties' object.");
    }
    const ttlIn = props.TTL ?? props.ttl;
    let ttl = existing?.ttl ?? 3600;
    if (ttlIn !== undefined) {
      if (
        typeof ttlIn !== "number" ||
        !Number.isInteger(ttlIn) ||
        ttlIn < 0 ||
        ttlIn > 2147483647
      ) {
        return armError(
          400,
          "BadRequest",
          `The value '${toText(ttlIn)}' for field 'TTL' is invalid.`,
        );
      }
      ttl = ttlIn;
    }
    let ips = existing?.ips ?? [];
    const recordsIn = props.ARecords ?? props.aRecords;
    if (recordsIn !== undefined || m === "PUT") {
      const list = Array.isArray(recordsIn) ? (recordsIn as unknown[]) : [];
      const parsed: string[] = [];
      for (const rec of list) {
        const ip = asString(asRecord(rec)?.ipv4Address);
        if (ip === undefined || !isIPv4(ip)) {
          return armError(
            400,
            "BadRequest",
            `The value '${String(ip)}' for field 'ipv4Address' is invalid.`,
          );
        }
        parsed.push(ip);
      }
      ips = parsed;
    }
    const metaIn = asRecord(props.metadata);
    const metadata = metaIn
      ? Object.fromEntries(Object.entries(metaIn).map(([k, v]) => [k, toText(v)]))
      : existing?.metadata;
    const stored: StoredRecordSet = {
      zoneKey: lower(z.id),
      zone: z.name,
      zoneId: z.id,
      resourceGroup: z.resourceGroup,
      name: existing?.name ?? name,
      ttl,
      ips,
      ...(metadata ? { metadata } : {}),
      etag: randomUUID(),
    };
    recordSets.set(key, stored);
    return json(existing ? 200 : 201, renderRecordSet(stored), { ETag: stored.etag });
  }

  // ----- run commands -------------------------------------------------------------------------

  function runCommand(
    req: SimRequest,
    rg: string,
    vmName: string,
    apiVersion: string,
  ): SimResponse {
    const vm = resources.get(lower(resourceId(rg, VM_TYPE, vmName)));
    if (!vm || vm.deletingUntil !== undefined) return resourceNotFound(rg, VM_TYPE, vmName);
    const body = asRecord(parseBody(req));
    const commandId = asString(body?.commandId);
    if (commandId === undefined || commandId === "") {
      return armError(400, "InvalidParameter", "Required parameter 'commandId' is missing (null).");
    }
    const script = Array.isArray(body?.script) ? (body.script as unknown[]).map(toText) : [];
    const parameters = (Array.isArray(body?.parameters) ? (body.parameters as unknown[]) : []).map(
      (p) => ({
        name: toText(asRecord(p)?.name ?? ""),
        value: toText(asRecord(p)?.value ?? ""),
      }),
    );
    if (busyVms.has(lower(vm.id))) {
      return armError(
        409,
        "Conflict",
        "Run command extension execution is in progress. Please wait for completion before invoking a run command.",
      );
    }
    const op = newOp("runCommand");
    const rec: SimRunCommand = {
      vmName: vm.name,
      resourceGroup: vm.resourceGroup,
      commandId,
      script,
      parameters,
      status: "InProgress",
      startedAt: op.startTime,
    };
    runCommandLog.push(rec);
    busyVms.add(lower(vm.id));
    const finishOp = (): void => {
      busyVms.delete(lower(vm.id));
      op.endTime = nowIso();
      rec.status = op.status;
    };
    executor(
      vm.name,
      [...script],
      parameters.map((p) => ({ ...p })),
    ).then(
      (result) => {
        rec.result = { ...result };
        // Like Azure's Linux run command: the operation succeeds whatever the exit code; the
        // script's streams (last 4 KiB each) are all the caller gets.
        op.output = {
          value: [
            {
              code: "ProvisioningState/succeeded",
              level: "Info",
              displayStatus: "Provisioning succeeded",
              message: `Enable succeeded: \n[stdout]\n${tail(result.stdout, RUN_COMMAND_OUTPUT_LIMIT)}\n[stderr]\n${tail(result.stderr, RUN_COMMAND_OUTPUT_LIMIT)}`,
            },
          ],
        };
        op.status = "Succeeded";
        finishOp();
      },
      (err: unknown) => {
        const message = err instanceof Error ? err.message : String(err);
        op.error = {
          code: "VMExtensionProvisioningError",
          message: `VM has reported a failure when processing extension 'RunCommandLinux'. Error message: "${message}".`,
        };
        rec.error = op.error;
        op.status = "Failed";
        finishOp();
      },
    );
    return noContent(202, providerOpHeaders(req, "Microsoft.Compute", vm.location, op, apiVersion));
  }

  // ----- start --------------------------------------------------------------------------------

  if (opts.gatewayVm) {
    plant({
      resourceGroup: opts.gatewayVm.resourceGroup,
      type: VM_TYPE,
      name: opts.gatewayVm.name,
    });
  }
  const ensureDnsZone = (rg: string, zone: string): void => {
    if (!zoneOf(rg, zone)) {
      plant({ resourceGroup: rg, type: ZONE_TYPE, name: lower(zone), location: "global" });
    }
  };
  if (opts.dnsZone) ensureDnsZone(opts.dnsZone.resourceGroup, opts.dnsZone.name);

  const server = await startSimServer(handle, {
    port: opts.port ?? 0,
    errorBody: (message) => ({ error: { code: "InternalServerError", message } }),
  });

  return {
    url: server.url,
    port: server.port,
    close: () => server.close(),
    resources: () => {
      advance();
      return [...resources.values()].map(toSimResource);
    },
    deployments: () => {
      advance();
      return [...deployments.values()].map(toSimDeployment);
    },
    dnsRecords: () =>
      [...recordSets.values()].map((rs) => ({
        zone: rs.zone,
        resourceGroup: rs.resourceGroup,
        name: rs.name,
        type: "A" as const,
        ttl: rs.ttl,
        ips: [...rs.ips],
        etag: rs.etag,
      })) satisfies SimDnsRecord[],
    runCommands: () => runCommandLog.map((r) => structuredClone(r)),
    requests: () => requestLog.map((r) => structuredClone(r)),
    deploymentPuts: () =>
      [...putsByOperation].map(([key, puts]) => {
        const [deployment = "", operation = ""] = key.split("|");
        return { deployment, ...(operation ? { operationId: operation } : {}), puts };
      }),
    resetRequests: () => {
      requestLog.length = 0;
    },
    injectFault: (f) => {
      faults.push({ ...f, remaining: Math.max(1, f.count ?? 1) });
    },
    failNextDeployment: (nameIncludes, error) => {
      pendingFailures.push({
        nameIncludes,
        error: error ?? {
          code: "SkuNotAvailable",
          message:
            "The requested VM size for resource 'Following SKUs have failed for Capacity Restrictions: Standard_B2s' is currently not available in this location. Please try another size or deploy to a different location or zones.",
        },
      });
    },
    plantResource: (r) => toSimResource(plant(r)),
    ensureDnsZone,
    removeResource: (id) => {
      advance();
      const key = lower(id);
      const existed = resources.has(key);
      dropResource(key);
      return existed;
    },
    setHostResponsive: (ref, responsive) => {
      advance();
      const vm = hostVm(ref);
      if (!vm) throw new Error(`no Grafana host VM for ref '${ref}'`);
      const vmId = asString(vm.properties.vmId) ?? vm.id;
      if (responsive) unresponsiveVms.delete(vmId);
      else unresponsiveVms.add(vmId);
    },
    hostAnswers: (ref) => {
      advance();
      const vm = hostVm(ref);
      return vm !== undefined && !unresponsiveVms.has(asString(vm.properties.vmId) ?? vm.id);
    },
  };
}
