/**
 * The ARM calls of the Grafana pipeline, each a small idempotent operation:
 * the template-spec deployment `grafana-<ref>` (PUT / GET / DELETE as plain requests through the
 * `@azure/arm-resources` client's pipeline: version 7 of that package has no deployments
 * operations, and a request that is sent once and never polled is what the pipeline needs),
 * the resources tagged `supafana-ref`, the VM's private IP (`@azure/arm-compute` +
 * `@azure/arm-network`), the public A record (`@azure/arm-dns`) and the gateway run command.
 *
 * Nothing here waits for minutes: long-running operations are started and left to the caller's
 * scheduled continuations, except the gateway run command, whose wait is bounded.
 */
import type { Services } from "../services.js";
import { ARM_REQUEST_TIMEOUT_MS, armClients } from "./clients.js";
import { ArmRequestError, armStatus, parseRetryAfter } from "./errors.js";

const REF_TAG = "supafana-ref";
const ORG_TAG = "supafana-org";
const OPERATION_TAG = "supafana-operation";
/** DNS record-set metadata key that marks our records (metadata keys are alphanumeric). */
const DNS_REF_METADATA = "supafanaRef";

const DEPLOYMENT_API_VERSION = "2024-03-01";
/** Used to delete tagged resources of types the SDKs have no typed client for here. */
const FALLBACK_API_VERSIONS: Record<string, string> = {
  "microsoft.compute": "2024-07-01",
  "microsoft.network": "2024-05-01",
  "microsoft.insights": "2023-03-11",
  "microsoft.storage": "2023-05-01",
};

export const deploymentName = (ref: string) => `grafana-${ref}`;
export const vmNameFor = (ref: string) => `grafana-${ref}`;

export function deploymentId(services: Services, ref: string): string {
  const c = services.config;
  return `/subscriptions/${c.AZURE_SUBSCRIPTION_ID}/resourceGroups/${c.GRAFANA_RESOURCE_GROUP}/providers/Microsoft.Resources/deployments/${deploymentName(ref)}`;
}

// ----- deployments ------------------------------------------------------------------------------

export type DeploymentProvisioningState =
  "Accepted" | "Running" | "Succeeded" | "Failed" | "Canceled" | (string & {});

export interface DeploymentStatus {
  id: string;
  provisioningState: DeploymentProvisioningState;
  /** The operation that PUT this deployment (our tag). */
  operationId?: string;
  outputs: { privateIpAddress?: string; vmName?: string };
  /** A readable summary of ARM's error, when it failed. */
  error?: string;
}

export const isActiveDeployment = (s: DeploymentStatus | undefined) =>
  s !== undefined &&
  ["Accepted", "Running", "Creating", "Updating", "Waiting", "Validating"].includes(
    s.provisioningState,
  );

interface ArmErrorShape {
  code?: unknown;
  message?: unknown;
  details?: unknown;
}

/** The innermost useful error of a failed deployment (ARM nests the cause in `details`). */
export function summarizeDeploymentError(error: unknown): string {
  const parts: string[] = [];
  let current = error as ArmErrorShape | undefined;
  for (let depth = 0; current && depth < 4; depth++) {
    const details = Array.isArray(current.details) ? (current.details as ArmErrorShape[]) : [];
    if (details.length === 0 || depth === 3) {
      const code = typeof current.code === "string" ? current.code : "DeploymentFailed";
      const message = typeof current.message === "string" ? current.message : "";
      parts.push(message ? `${code}: ${message}` : code);
      break;
    }
    current = details[0];
  }
  return parts.join("; ") || "DeploymentFailed";
}

interface RawResponse {
  status: number;
  body: Record<string, unknown> | undefined;
}

/**
 * One ARM request through the resources client's pipeline (its credential, transport and
 * time-out), without a long-running-operation poller: the deployment is watched by scheduled
 * continuations, so the request is sent once and never polled here. A 4xx/5xx answer throws
 * `ArmRequestError` with ARM's code and message.
 */
async function armRequest(
  services: Services,
  method: "GET" | "PUT" | "DELETE",
  path: string,
  apiVersion: string,
  body?: unknown,
): Promise<RawResponse> {
  const clients = await armClients(services);
  const { createPipelineRequest, createHttpHeaders } = await import("@azure/core-rest-pipeline");
  const request = createPipelineRequest({
    url: `${clients.endpoint}${path}?api-version=${encodeURIComponent(apiVersion)}`,
    method,
    headers: createHttpHeaders({ accept: "application/json", "content-type": "application/json" }),
    timeout: ARM_REQUEST_TIMEOUT_MS,
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const res = await clients.resources.sendRequest(request);
  let parsed: Record<string, unknown> | undefined;
  if (res.bodyAsText) {
    try {
      const value = JSON.parse(res.bodyAsText) as unknown;
      if (typeof value === "object" && value !== null) parsed = value as Record<string, unknown>;
    } catch {
      parsed = undefined;
    }
  }
  if (res.status >= 400) {
    const error = (parsed?.error ?? {}) as { code?: unknown; message?: unknown };
    throw new ArmRequestError(
      res.status,
      typeof error.code === "string" ? error.code : `HTTP${res.status}`,
      typeof error.message === "string" ? error.message : "",
      parseRetryAfter(res.headers.get("retry-after")),
    );
  }
  return { status: res.status, body: parsed };
}

/** The deployment `grafana-<ref>`, or undefined when there is none. */
export async function getDeployment(
  services: Services,
  ref: string,
): Promise<DeploymentStatus | undefined> {
  let d: Record<string, unknown>;
  try {
    d =
      (await armRequest(services, "GET", deploymentId(services, ref), DEPLOYMENT_API_VERSION))
        .body ?? {};
  } catch (err) {
    if (armStatus(err) === 404) return undefined;
    throw err;
  }
  const props = (d.properties ?? {}) as Record<string, unknown>;
  const tags = (d.tags ?? {}) as Record<string, unknown>;
  const outputs = (props.outputs ?? {}) as Record<string, { value?: unknown } | undefined>;
  const str = (v: unknown) => (typeof v === "string" ? v : undefined);
  const privateIpAddress = str(outputs.privateIpAddress?.value);
  const vmName = str(outputs.vmName?.value);
  const state = str(props.provisioningState) ?? "Accepted";
  const operationId = str(tags[OPERATION_TAG]);
  // Only what is needed is kept: the parameters (the secure cloud-init) are never read.
  return {
    id: str(d.id) ?? deploymentId(services, ref),
    provisioningState: state,
    ...(operationId ? { operationId } : {}),
    outputs: {
      ...(privateIpAddress ? { privateIpAddress } : {}),
      ...(vmName ? { vmName } : {}),
    },
    ...(state === "Failed" ? { error: summarizeDeploymentError(props.error) } : {}),
  };
}

export interface DeploymentRequest {
  ref: string;
  org: string;
  operationId: string;
  templateSpecId: string;
  vmSize: string;
  /** Raw cloud-init text: a `@secure()` template parameter (it carries the service key). */
  cloudInit: string;
  /** The isolated Grafana subnet (GRAFANA_SUBNET_ID). */
  subnetId: string;
  /** Break-glass SSH key (GRAFANA_ADMIN_SSH_PUBLIC_KEY); password login is off. */
  adminSshPublicKey: string;
  /**
   * A snapshot to create the data disk from. Pass it only when the data disk is missing: ARM
   * refuses to change an existing disk's creationData. Sent as a parameter only when set.
   */
  dataDiskSnapshotId?: string;
}

/**
 * PUTs the deployment (Incremental, the template spec by id). Returns `"active"` when ARM says
 * the deployment is still running (a previous PUT of ours went through).
 */
export async function putDeployment(
  services: Services,
  req: DeploymentRequest,
): Promise<"accepted" | "active"> {
  const tags = { [REF_TAG]: req.ref, [ORG_TAG]: req.org };
  try {
    await armRequest(services, "PUT", deploymentId(services, req.ref), DEPLOYMENT_API_VERSION, {
      tags: { ...tags, [OPERATION_TAG]: req.operationId },
      properties: {
        mode: "Incremental",
        templateLink: { id: req.templateSpecId },
        parameters: {
          projectRef: { value: req.ref },
          vmName: { value: vmNameFor(req.ref) },
          vmSize: { value: req.vmSize },
          cloudInit: { value: req.cloudInit },
          subnetId: { value: req.subnetId },
          adminSshPublicKey: { value: req.adminSshPublicKey },
          tags: { value: tags },
          ...(req.dataDiskSnapshotId
            ? { dataDiskSnapshotId: { value: req.dataDiskSnapshotId } }
            : {}),
        },
      },
    });
    return "accepted";
  } catch (err) {
    if (err instanceof ArmRequestError && err.statusCode === 409 && err.code === "DeploymentActive")
      return "active";
    throw err;
  }
}

/** Deletes the deployment record (its resources stay). `"active"` when it is still running. */
export async function deleteDeployment(
  services: Services,
  ref: string,
): Promise<"deleted" | "active"> {
  try {
    await armRequest(services, "DELETE", deploymentId(services, ref), DEPLOYMENT_API_VERSION);
    return "deleted";
  } catch (err) {
    const status = armStatus(err);
    if (status === 404) return "deleted";
    if (status === 409) return "active";
    throw err;
  }
}

// ----- tagged resources ---------------------------------------------------------------------

export interface TaggedResource {
  id: string;
  name: string;
  type: string;
  ref: string;
}

function escapeOdata(value: string): string {
  return value.replace(/'/g, "''");
}

/** Resources in the Grafana resource group tagged `supafana-ref` (= `ref` when given). */
export async function listTaggedResources(
  services: Services,
  ref?: string,
): Promise<TaggedResource[]> {
  const { resources } = await armClients(services);
  const filter =
    ref === undefined
      ? `tagName eq '${REF_TAG}'`
      : `tagName eq '${REF_TAG}' and tagValue eq '${escapeOdata(ref)}'`;
  const out: TaggedResource[] = [];
  for await (const r of resources.resources.listByResourceGroup(
    services.config.GRAFANA_RESOURCE_GROUP,
    { filter },
  )) {
    const tag = r.tags?.[REF_TAG];
    if (!r.id || !r.name || !r.type || tag === undefined) continue;
    if (ref !== undefined && tag !== ref) continue;
    out.push({ id: r.id, name: r.name, type: r.type, ref: tag });
  }
  return out;
}

const lower = (s: string) => s.toLowerCase();
export const isVm = (r: TaggedResource) => lower(r.type) === "microsoft.compute/virtualmachines";

/** Parses `/subscriptions/s/resourceGroups/rg/providers/ns/type/name`. */
export function parseResourceId(
  id: string,
): { resourceGroup: string; namespace: string; type: string; name: string } | undefined {
  const m =
    /^\/subscriptions\/[^/]+\/resourceGroups\/([^/]+)\/providers\/([^/]+)\/([^/]+)\/([^/]+)$/i.exec(
      id,
    );
  if (!m) return undefined;
  return { resourceGroup: m[1] ?? "", namespace: m[2] ?? "", type: m[3] ?? "", name: m[4] ?? "" };
}

async function apiVersionFor(services: Services, namespace: string, type: string): Promise<string> {
  const key = `azure:api-version:${lower(namespace)}/${lower(type)}`;
  const cache = services.memo("azure:api-versions", () => new Map<string, string>());
  const known = cache.get(key);
  if (known) return known;
  let version: string | undefined;
  try {
    const { resources } = await armClients(services);
    const provider = await resources.providers.get(namespace);
    const rt = provider.resourceTypes?.find((t) => lower(t.resourceType ?? "") === lower(type));
    version = rt?.apiVersions?.find((v) => !v.includes("preview")) ?? rt?.apiVersions?.[0];
  } catch {
    version = undefined;
  }
  version ??= FALLBACK_API_VERSIONS[lower(namespace)] ?? DEPLOYMENT_API_VERSION;
  cache.set(key, version);
  return version;
}

/**
 * Starts deleting one resource (does not wait). Resources that are already gone count as
 * deleted. A NIC or disk still attached to a VM fails with 400/409: the caller deletes VMs first.
 */
export async function startDelete(services: Services, r: TaggedResource): Promise<void> {
  const clients = await armClients(services);
  const parsed = parseResourceId(r.id);
  try {
    if (
      parsed &&
      lower(parsed.namespace) === "microsoft.compute" &&
      lower(parsed.type) === "virtualmachines"
    ) {
      await clients.compute.virtualMachines.delete(parsed.resourceGroup, parsed.name).submitted();
    } else if (
      parsed &&
      lower(parsed.namespace) === "microsoft.compute" &&
      lower(parsed.type) === "disks"
    ) {
      await clients.compute.disks.delete(parsed.resourceGroup, parsed.name).submitted();
    } else if (
      parsed &&
      lower(parsed.namespace) === "microsoft.compute" &&
      lower(parsed.type) === "snapshots"
    ) {
      await clients.compute.snapshots.delete(parsed.resourceGroup, parsed.name).submitted();
    } else if (
      parsed &&
      lower(parsed.namespace) === "microsoft.network" &&
      lower(parsed.type) === "networkinterfaces"
    ) {
      await clients.network.networkInterfaces.beginDelete(parsed.resourceGroup, parsed.name);
    } else {
      const version = parsed
        ? await apiVersionFor(services, parsed.namespace, parsed.type)
        : DEPLOYMENT_API_VERSION;
      await clients.resources.resources.beginDeleteById(r.id, version);
    }
  } catch (err) {
    if (armStatus(err) === 404) return;
    throw err;
  }
}

// ----- the VM's private IP ------------------------------------------------------------------

/** The private IPv4 of the Grafana VM's primary NIC; undefined when the VM or NIC is missing. */
export async function readVmPrivateIp(
  services: Services,
  ref: string,
): Promise<string | undefined> {
  const clients = await armClients(services);
  const rg = services.config.GRAFANA_RESOURCE_GROUP;
  let nicId: string | undefined;
  try {
    const vm = await clients.compute.virtualMachines.get(rg, vmNameFor(ref));
    const nics = vm.networkProfile?.networkInterfaces ?? [];
    nicId = (nics.find((n) => n.primary) ?? nics[0])?.id;
  } catch (err) {
    if (armStatus(err) === 404) return undefined;
    throw err;
  }
  const parsed = nicId ? parseResourceId(nicId) : undefined;
  if (!parsed) return undefined;
  try {
    const nic = await clients.network.networkInterfaces.get(parsed.resourceGroup, parsed.name);
    const configs = nic.ipConfigurations ?? [];
    const primary = configs.find((c) => c.primary) ?? configs[0];
    return primary?.privateIPAddress ?? undefined;
  } catch (err) {
    if (armStatus(err) === 404) return undefined;
    throw err;
  }
}

// ----- public DNS -------------------------------------------------------------------------

export interface DnsRecord {
  name: string;
  ips: string[];
  ref?: string;
}

const DNS_TTL_SECONDS = 300;

/** The A record `<name>` in the zone, or undefined. */
async function getDnsRecord(services: Services, name: string): Promise<DnsRecord | undefined> {
  const { dns } = await armClients(services);
  const c = services.config;
  try {
    const rs = await dns.recordSets.get(c.DNS_RESOURCE_GROUP, c.DNS_ZONE_NAME, name, "A");
    const ref = rs.metadata?.[DNS_REF_METADATA];
    return {
      name,
      ips: (rs.aRecords ?? []).map((a) => a.ipv4Address ?? "").filter(Boolean),
      ...(ref ? { ref } : {}),
    };
  } catch (err) {
    if (armStatus(err) === 404) return undefined;
    throw err;
  }
}

/**
 * Points `<ref>.<zone>` at the gateway. Reads first and writes only when the record differs,
 * so a redelivered step costs no write.
 */
export async function upsertDnsRecord(
  services: Services,
  ref: string,
): Promise<"unchanged" | "written"> {
  const c = services.config;
  const current = await getDnsRecord(services, ref);
  if (
    current &&
    current.ips.length === 1 &&
    current.ips[0] === c.GATEWAY_PUBLIC_IP &&
    current.ref === ref
  ) {
    return "unchanged";
  }
  const { dns } = await armClients(services);
  await dns.recordSets.createOrUpdate(c.DNS_RESOURCE_GROUP, c.DNS_ZONE_NAME, ref, "A", {
    ttl: DNS_TTL_SECONDS,
    aRecords: [{ ipv4Address: c.GATEWAY_PUBLIC_IP }],
    metadata: { [DNS_REF_METADATA]: ref },
  });
  return "written";
}

export async function deleteDnsRecord(services: Services, name: string): Promise<void> {
  const { dns } = await armClients(services);
  const c = services.config;
  try {
    await dns.recordSets.delete(c.DNS_RESOURCE_GROUP, c.DNS_ZONE_NAME, name, "A");
  } catch (err) {
    if (armStatus(err) === 404) return;
    throw err;
  }
}

/** A records of the zone that we created (they carry our metadata). */
export async function listOurDnsRecords(services: Services): Promise<DnsRecord[]> {
  const { dns } = await armClients(services);
  const c = services.config;
  const out: DnsRecord[] = [];
  for await (const rs of dns.recordSets.listByType(c.DNS_RESOURCE_GROUP, c.DNS_ZONE_NAME, "A")) {
    const ref = rs.metadata?.[DNS_REF_METADATA];
    if (!ref || !rs.name) continue;
    out.push({
      name: rs.name,
      ips: (rs.aRecords ?? []).map((a) => a.ipv4Address ?? "").filter(Boolean),
      ref,
    });
  }
  return out;
}

// ----- gateway run command ----------------------------------------------------------------

export interface RunCommandOutput {
  /** stdout and stderr as Azure reports them (the last 4 KiB of each). */
  message: string;
}

/**
 * Runs a shell script on the gateway VM and waits for it (bounded by `timeoutMs`). Azure's
 * Linux run command succeeds whatever the script's exit code: the caller reads the output.
 */
export function runGatewayScript(
  services: Services,
  script: string[],
  opts: { timeoutMs: number; pollIntervalMs?: number },
): Promise<RunCommandOutput> {
  const c = services.config;
  return runScript(services, c.GATEWAY_RESOURCE_GROUP, c.GATEWAY_VM_NAME, script, opts);
}

/**
 * Runs a shell script on a project's Grafana VM and waits for it (bounded by `timeoutMs`); the
 * caller reads the outcome from the output, as with {@link runGatewayScript}.
 */
export function runGrafanaHostScript(
  services: Services,
  ref: string,
  script: string[],
  opts: { timeoutMs: number; pollIntervalMs?: number },
): Promise<RunCommandOutput> {
  return runScript(services, services.config.GRAFANA_RESOURCE_GROUP, vmNameFor(ref), script, opts);
}

/** One run command (`RunShellScript`) on a VM, polled until done or `timeoutMs`. */
async function runScript(
  services: Services,
  resourceGroup: string,
  vmName: string,
  script: string[],
  opts: { timeoutMs: number; pollIntervalMs?: number },
): Promise<RunCommandOutput> {
  const { compute } = await armClients(services);
  const result = await compute.virtualMachines
    .runCommand(
      resourceGroup,
      vmName,
      { commandId: "RunShellScript", script },
      {
        updateIntervalInMs: opts.pollIntervalMs ?? 2000,
        abortSignal: AbortSignal.timeout(opts.timeoutMs),
      },
    )
    .pollUntilDone();
  const message = (result.value ?? []).map((s) => s.message ?? "").join("\n");
  return { message };
}

// ----- data disks and their snapshots -------------------------------------------------------
//
// Replacing a host deletes its VM, NIC and OS disk but keeps the data disk `grafana-<ref>-data`,
// which the redeployed template attaches as it is. A daily incremental snapshot per instance
// protects that disk; a host whose data disk is gone is redeployed from the newest snapshot
// (`DeploymentRequest.dataDiskSnapshotId`).

export const dataDiskName = (ref: string) => `${vmNameFor(ref)}-data`;

/** The resource id of a project's data disk (whether or not it exists). */
export function dataDiskId(services: Services, ref: string): string {
  const c = services.config;
  return `/subscriptions/${c.AZURE_SUBSCRIPTION_ID}/resourceGroups/${c.GRAFANA_RESOURCE_GROUP}/providers/Microsoft.Compute/disks/${dataDiskName(ref)}`;
}

const DISK_TYPE = "microsoft.compute/disks";
const SNAPSHOT_TYPE = "microsoft.compute/snapshots";

/** The data disk of a project: the disk named `grafana-<ref>-data`. */
export const isDataDisk = (r: TaggedResource) =>
  lower(r.type) === DISK_TYPE && lower(r.name) === lower(dataDiskName(r.ref));

export const isSnapshot = (r: TaggedResource) => lower(r.type) === SNAPSHOT_TYPE;

export interface DataDisk {
  id: string;
  /** Changes when the disk is re-created under the same name. */
  uniqueId?: string;
  createdAt?: Date;
}

/** The project's data disk, or undefined when there is none. */
export async function getDataDisk(services: Services, ref: string): Promise<DataDisk | undefined> {
  const { compute } = await armClients(services);
  try {
    const disk = await compute.disks.get(services.config.GRAFANA_RESOURCE_GROUP, dataDiskName(ref));
    if (!disk.id) return undefined;
    return {
      id: disk.id,
      ...(disk.uniqueId ? { uniqueId: disk.uniqueId } : {}),
      ...(disk.timeCreated ? { createdAt: disk.timeCreated } : {}),
    };
  } catch (err) {
    if (armStatus(err) === 404) return undefined;
    throw err;
  }
}

export interface SnapshotRequest {
  ref: string;
  org: string;
  /** The snapshot's name (unique per resource group; the caller chooses it, e.g. per day). */
  name: string;
  /** The disk to snapshot (`getDataDisk(...).id`). */
  sourceDiskId: string;
}

/**
 * Starts an incremental snapshot of a disk, tagged `supafana-ref` and `supafana-org`, in the
 * Grafana resource group and the disk's region; does not wait for it. PUTting a name that exists
 * with the same source is accepted again (a redelivered step); another source is refused by ARM
 * (409 PropertyChangeNotAllowed). A missing source disk throws ARM's 404.
 */
export async function createSnapshot(services: Services, req: SnapshotRequest): Promise<void> {
  const { compute } = await armClients(services);
  const source = parseResourceId(req.sourceDiskId);
  if (!source) throw new Error(`not a disk resource id: ${req.sourceDiskId}`);
  // A snapshot lives in its disk's region.
  const disk = await compute.disks.get(source.resourceGroup, source.name);
  await compute.snapshots
    .createOrUpdate(services.config.GRAFANA_RESOURCE_GROUP, req.name, {
      location: disk.location,
      tags: { [REF_TAG]: req.ref, [ORG_TAG]: req.org },
      incremental: true,
      creationData: { createOption: "Copy", sourceResourceId: req.sourceDiskId },
    })
    .submitted();
}

export interface SnapshotInfo {
  id: string;
  name: string;
  ref: string;
  createdAt: Date;
  /** `uniqueId` of the disk it was taken from (tells apart disks re-created under one name). */
  sourceUniqueId?: string;
}

/**
 * The snapshots tagged `supafana-ref` (= `ref` when given) in the Grafana resource group, newest
 * first: one paged list of the group's snapshots, whatever the number of projects. Snapshots
 * without a creation time yet are left out.
 */
export async function listSnapshots(services: Services, ref?: string): Promise<SnapshotInfo[]> {
  const { compute } = await armClients(services);
  const out: SnapshotInfo[] = [];
  for await (const s of compute.snapshots.listByResourceGroup(
    services.config.GRAFANA_RESOURCE_GROUP,
  )) {
    const tag = s.tags?.[REF_TAG];
    if (!s.id || !s.name || tag === undefined || !s.timeCreated) continue;
    if (ref !== undefined && tag !== ref) continue;
    const sourceUniqueId = s.creationData?.sourceUniqueId;
    out.push({
      id: s.id,
      name: s.name,
      ref: tag,
      createdAt: s.timeCreated,
      ...(sourceUniqueId ? { sourceUniqueId } : {}),
    });
  }
  // Newest first; the same instant in name order (descending), so the order is stable.
  return out.sort(
    (a, b) =>
      b.createdAt.getTime() - a.createdAt.getTime() ||
      (a.name < b.name ? 1 : a.name > b.name ? -1 : 0),
  );
}
