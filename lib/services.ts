/**
 * The process's services: configuration, state, messaging and the clients of outside systems.
 * Created once per process (the Functions worker, the local host, a test) and passed to every
 * handler. Heavy SDKs are created on first use by the feature modules through `memo`, so a
 * function that never talks to Stripe never loads Stripe.
 */
import type { TokenCredential } from "@azure/core-auth";

import { azureArmTransport, type ArmTransport } from "./azure/clients.js";
import { createBus, type Bus } from "./bus.js";
import type { Config } from "./config.js";
import { gatewayHost, type GatewayHost, type GatewayHostOptions } from "./gateway/host.js";
import { grafanaHostsOverHttps, type GrafanaHostHttp } from "./grafana-host/http.js";
import { createTables, type Tables } from "./storage/tables.js";

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/**
 * The ports to the outside that differ between Azure and the local platform. `createServices`
 * builds Azure's; the local host and tests pass their own implementations.
 */
export interface Ports {
  /** How the ARM SDK clients reach ARM (resolved on first use). */
  armTransport(): ArmTransport;
  /** HTTP towards the Grafana hosts: the readiness probe and the admin API. */
  readonly grafanaHosts: GrafanaHostHttp;
  /** Where nginx and the Grafana sign-in live on the gateway host. */
  readonly gatewayHost: GatewayHost;
}

/** What a process that is not the Functions app in Azure passes to `createServices`. */
export interface ServiceOptions {
  /** Azure credential (a static token against the ARM simulator). */
  credential?: TokenCredential;
  /** How the ARM SDK clients reach ARM (the ARM simulator is plain HTTP on loopback). */
  armTransport?: ArmTransport;
  /** Table name prefix, so test runs never collide (default `TABLE_PREFIX`). */
  tablePrefix?: string;
  clock?: Clock;
  grafanaHosts?: GrafanaHostHttp;
  gatewayHost?: GatewayHostOptions;
}

export interface Services {
  readonly config: Config;
  readonly tables: Tables;
  readonly bus: Bus;
  readonly clock: Clock;
  readonly ports: Ports;
  /** The Azure credential (managed identity in Azure), created on first use. */
  credential(): Promise<TokenCredential>;
  /** One instance per key for the life of the process. */
  memo<T>(key: string, factory: () => T): T;
  /** Runs a cleanup when the services are closed. */
  onClose(fn: () => Promise<void> | void): void;
  close(): Promise<void>;
}

export function createServices(config: Config, options: ServiceOptions = {}): Services {
  const cache = new Map<string, unknown>();
  const closers: Array<() => Promise<void> | void> = [];
  let credentialPromise: Promise<TokenCredential> | undefined;
  const memo = <T>(key: string, factory: () => T): T => {
    if (!cache.has(key)) cache.set(key, factory());
    return cache.get(key) as T;
  };

  const credential = (): Promise<TokenCredential> => {
    credentialPromise ??= options.credential
      ? Promise.resolve(options.credential)
      : import("@azure/identity").then(
          ({ DefaultAzureCredential }) =>
            new DefaultAzureCredential(
              config.AZURE_CLIENT_ID ? { managedIdentityClientId: config.AZURE_CLIENT_ID } : {},
            ),
        );
    return credentialPromise;
  };

  const tables = createTables({
    connectionString: config.StorageConnection,
    serviceUri: config.StorageConnection__tableServiceUri,
    credential,
    ...((options.tablePrefix ?? config.TABLE_PREFIX)
      ? { prefix: options.tablePrefix ?? config.TABLE_PREFIX }
      : {}),
  });
  const bus = createBus({
    connectionString: config.ServiceBusConnection,
    fullyQualifiedNamespace: config.ServiceBusConnection__fullyQualifiedNamespace,
    credential,
    queueNames: { provisioning: config.PROVISIONING_QUEUE, gateway: config.GATEWAY_QUEUE },
  });

  return {
    config,
    tables,
    bus,
    clock: options.clock ?? systemClock,
    ports: {
      armTransport: () =>
        options.armTransport ??
        memo("ports:arm-transport", () => azureArmTransport(config.ARM_ENDPOINT)),
      grafanaHosts: options.grafanaHosts ?? grafanaHostsOverHttps,
      gatewayHost: gatewayHost(options.gatewayHost),
    },
    credential,
    memo,
    onClose(fn) {
      closers.push(fn);
    },
    async close() {
      await Promise.allSettled(closers.splice(0).map(async (fn) => fn()));
      await bus.close();
    },
  };
}
