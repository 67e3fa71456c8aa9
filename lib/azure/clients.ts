/**
 * Azure Resource Manager SDK clients, created once per process (through `services.memo`) and
 * loaded with dynamic imports, so a function that never talks to ARM never loads the SDKs.
 *
 * The SDK clients keep an `https://` endpoint (their bearer-token policy refuses anything else).
 * In Azure that is `ARM_ENDPOINT` (management.azure.com by default) with the function's managed
 * identity and the SDK's own HTTP client; the local platform passes its own transport
 * (`services.ports.armTransport()`).
 *
 * The SDKs' own retry policies are off: every transient failure (429, 5xx, time-outs) surfaces
 * to the caller, which retries with a persisted, bounded backoff through scheduled messages
 * instead of sleeping inside a function. Every request gets a time-out.
 */
import type { ComputeManagementClient } from "@azure/arm-compute";
import type { DnsManagementClient } from "@azure/arm-dns";
import type { NetworkManagementClient } from "@azure/arm-network";
import type { ResourceManagementClient } from "@azure/arm-resources";
import type { HttpClient, PipelinePolicy } from "@azure/core-rest-pipeline";

import type { Services } from "../services.js";

export interface ArmClients {
  /** The https endpoint the clients address (for raw requests through their pipeline). */
  endpoint: string;
  resources: ResourceManagementClient;
  compute: ComputeManagementClient;
  network: NetworkManagementClient;
  dns: DnsManagementClient;
}

/** Per-request time-out of every ARM call (a hung connection is a transient error). */
export const ARM_REQUEST_TIMEOUT_MS = 30_000;

export interface ArmTransport {
  /** The https endpoint the SDK clients address. */
  endpoint: string;
  httpClient?: HttpClient;
}

/** Azure's transport: the https `ARM_ENDPOINT` with the SDK's own HTTP client. */
export function azureArmTransport(armEndpoint: string): ArmTransport {
  if (new URL(armEndpoint).protocol !== "https:") {
    throw new Error("ARM_ENDPOINT must be https (bearer tokens never go over plain HTTP)");
  }
  return { endpoint: armEndpoint.replace(/\/+$/, "") };
}

const timeoutPolicy: PipelinePolicy = {
  name: "supafanaArmTimeout",
  sendRequest(request, next) {
    if (!request.timeout) request.timeout = ARM_REQUEST_TIMEOUT_MS;
    return next(request);
  },
};

/** The process's ARM clients (created on first use). */
export function armClients(services: Services): Promise<ArmClients> {
  return services.memo("azure:arm-clients", async () => {
    const { config } = services;
    const transport = services.ports.armTransport();
    const [credential, resources, compute, network, dns] = await Promise.all([
      services.credential(),
      import("@azure/arm-resources"),
      import("@azure/arm-compute"),
      import("@azure/arm-network"),
      import("@azure/arm-dns"),
    ]);
    const options = {
      endpoint: transport.endpoint,
      ...(transport.httpClient ? { httpClient: transport.httpClient } : {}),
      retryOptions: { maxRetries: 0 },
      additionalPolicies: [{ policy: timeoutPolicy, position: "perCall" as const }],
    };
    const sub = config.AZURE_SUBSCRIPTION_ID;
    return {
      endpoint: transport.endpoint,
      resources: new resources.ResourceManagementClient(credential, sub, options),
      compute: new compute.ComputeManagementClient(credential, sub, options),
      network: new network.NetworkManagementClient(credential, sub, options),
      dns: new dns.DnsManagementClient(credential, sub, options),
    };
  });
}
