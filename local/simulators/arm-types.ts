/** Public shapes of the ARM simulator (see `arm.ts`). */

/** A resource as the simulator holds it (properties as a GET would show them). */
export interface SimResource {
  id: string;
  type: string;
  name: string;
  resourceGroup: string;
  location: string;
  tags: Record<string, string>;
  properties: Record<string, unknown>;
}

export type SimProvisioningState = "Accepted" | "Running" | "Succeeded" | "Failed";

/** The error body ARM uses everywhere: `{ error: ArmErrorBody }`. */
export interface ArmErrorBody {
  code: string;
  message: string;
  target?: string;
  details?: ArmErrorBody[];
}

/** One PUT received for a deployment, accepted (200/201) or refused (e.g. 409). */
export interface SimDeploymentPut {
  at: string;
  status: number;
  templateLinkId?: string;
  parameters: Record<string, unknown>;
  tags?: Record<string, string>;
}

export interface SimDeployment {
  id: string;
  name: string;
  resourceGroup: string;
  mode: string;
  templateLinkId?: string;
  /** The `properties.parameters` object of the last accepted PUT, as received. */
  parameters: Record<string, unknown>;
  tags?: Record<string, string>;
  provisioningState: SimProvisioningState;
  outputs?: Record<string, { type: string; value?: unknown }>;
  error?: ArmErrorBody;
  /** Accepted PUTs (200/201). */
  puts: number;
  /** Every PUT, including refused ones. */
  history: SimDeploymentPut[];
}

export interface SimDnsRecord {
  zone: string;
  resourceGroup: string;
  name: string;
  type: "A";
  ttl: number;
  ips: string[];
  etag: string;
}

export interface RunCommandOutcome {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export type RunCommandExecutor = (
  vmName: string,
  script: string[],
  parameters: Array<{ name: string; value: string }>,
) => Promise<RunCommandOutcome>;

export interface SimRunCommand {
  vmName: string;
  resourceGroup: string;
  commandId: string;
  script: string[];
  parameters: Array<{ name: string; value: string }>;
  status: "InProgress" | "Succeeded" | "Failed";
  /** Set once the executor has answered. */
  result?: RunCommandOutcome;
  /** Set when the executor threw. */
  error?: ArmErrorBody;
  startedAt: string;
}

export interface SimRequestRecord {
  method: string;
  /** Path without the query string, repeated slashes collapsed (`beginDeleteById` sends `//subscriptions/...`). */
  path: string;
  /** The path exactly as received, when it differs from `path`. */
  rawPath?: string;
  /** The raw query string, without `?`. */
  query: string;
  apiVersion?: string;
  /** Parsed JSON when the body is JSON, the text otherwise, `undefined` when empty. */
  body: unknown;
  /** Status answered; 0 when the connection was dropped by a "timeout" fault. */
  status?: number;
  at: string;
}

export interface ArmFault {
  status: 429 | 500 | "timeout";
  /** How many matching requests get the fault (default 1). */
  count?: number;
  /** Only requests with this method (any case). */
  method?: string;
  /** Only requests whose path contains this (case-insensitive). */
  pathIncludes?: string;
  /** `Retry-After` of a 429 (default 1). */
  retryAfterSeconds?: number;
  /** How long a "timeout" holds the request before dropping the socket (default 5000). */
  timeoutMs?: number;
}

export interface ArmSimOptions {
  port?: number;
  subscriptionId: string;
  /** Ms a deployment stays Running before it ends (default 1500; 0 = ended at the next request). */
  deploymentDelayMs?: number;
  /** Private IP allocator base, e.g. "10.20.0." (default). */
  grafanaSubnetPrefix?: string;
  /** Runs run-command scripts; without it every script "succeeds" with empty output. */
  runCommandExecutor?: RunCommandExecutor;
  /** A VM planted at start (the gateway that receives run commands). */
  gatewayVm?: { resourceGroup: string; name: string };
  /** A DNS zone created at start. */
  dnsZone?: { resourceGroup: string; name: string };
  /** Location of created resources when the deployment has no `location` parameter (default "eastus"). */
  location?: string;
  /** Ms a deleted resource stays in "Deleting" (default 0: gone when the DELETE is answered). */
  deleteDelayMs?: number;
  /** `Retry-After` seconds on long-running-operation responses (default 0: the SDK's own interval applies). */
  lroRetryAfterSeconds?: number;
  /** Base of polling URLs when the request's Host is the simulator itself (default https://management.azure.com). */
  publicEndpoint?: string;
  /** Deployment parameters reported back as `{ type: "SecureString" }` without value on GET. */
  secureParameters?: string[];
  /**
   * Time in ms since the epoch (default `Date.now`): deployments end and deletes finish by it,
   * so a test can hold time still or move it on instead of waiting.
   */
  clock?: () => number;
}

export interface ArmSimulator {
  url: string;
  port: number;
  close(): Promise<void>;
  /** All resources currently present (including ones still "Deleting"). */
  resources(): SimResource[];
  deployments(): SimDeployment[];
  dnsRecords(): SimDnsRecord[];
  runCommands(): SimRunCommand[];
  /** Every request received, in order. */
  requests(): SimRequestRecord[];
  /**
   * Deployment PUTs received (refused and faulted ones included), per deployment
   * (`<resource group>/<name>`, lower case) and per operation (the `supafana-operation` tag),
   * since the simulator started: `resetRequests` does not clear them.
   */
  deploymentPuts(): Array<{ deployment: string; operationId?: string; puts: number }>;
  resetRequests(): void;
  /** Fault injection for the next matching requests. */
  injectFault(f: ArmFault): void;
  /**
   * The next deployment PUT whose name includes `nameIncludes` ends Failed. As ARM does, the
   * deployment error is `DeploymentFailed` with the given error in `details[0]`.
   */
  failNextDeployment(nameIncludes: string, error?: { code: string; message: string }): void;
  plantResource(r: {
    resourceGroup: string;
    type: string;
    name: string;
    location?: string;
    tags?: Record<string, string>;
    properties?: Record<string, unknown>;
  }): SimResource;
  ensureDnsZone(resourceGroup: string, zone: string): void;
  /**
   * Deletes a resource out of band (someone deleted it in the portal, a disk was lost): no
   * request, no operation. A VM takes along what its `deleteOption` says (the OS disk). Returns
   * whether it existed.
   */
  removeResource(id: string): boolean;
  /**
   * Makes the current VM of project `ref` stop (false) or resume (true) answering health probes
   * while it exists. A VM that replaces it answers again. Throws when the project has no VM.
   */
  setHostResponsive(ref: string, responsive: boolean): void;
  /** Whether project `ref`'s host would answer: its VM exists (not being deleted) and is responsive. */
  hostAnswers(ref: string): boolean;
}
