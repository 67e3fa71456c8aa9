/**
 * The process's services: configuration, state, messaging and the clients of outside systems.
 * Created once per process (the Functions worker, the local host, a test) and passed to every
 * handler. Heavy SDKs are created on first use by the feature modules through `memo`, so a
 * function that never talks to Stripe never loads Stripe.
 */
import type { TokenCredential } from "@azure/core-auth";
import type { HttpClient } from "@azure/core-rest-pipeline";

import { createBus, type Bus } from "./bus.js";
import type { Config } from "./config.js";
import type { GatewayRenderOptions } from "./gateway/nginx.js";
import type { GatewayPushOptions } from "./gateway/push-script.js";
import { createTables, type Tables } from "./storage/tables.js";

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** What the local host and tests swap in; production uses none of these. */
export interface ServiceOverrides {
  /** Azure credential (a static token against the ARM simulator). */
  credential?: TokenCredential;
  /** Transport for ARM SDK clients (the ARM simulator is plain HTTP on loopback). */
  armHttpClient?: HttpClient;
  /** Table name prefix, so test runs never collide. */
  tablePrefix?: string;
  clock?: Clock;
  /** Readiness probe of a Grafana URL (HTTP status, 0 = unreachable); production uses fetch. */
  probe?: (url: string) => Promise<number>;
  /** `fetch` towards the Grafana instances (admin password change); production uses fetch. */
  grafanaFetch?: typeof fetch;
  /**
   * Where the gateway's nginx lives when it is not the gateway VM: tests run a real nginx out of
   * a temp prefix on high ports, and the pushed script targets it.
   */
  gatewayHost?: {
    render?: Partial<GatewayRenderOptions>;
    push?: Partial<GatewayPushOptions>;
    /** Where the sign-in's files live on the gateway host (tests run nginx from a temp prefix). */
    signin?: {
      scriptDir?: string;
      keysPath?: string;
      usedTicketsDir?: string;
      njsModulePath?: string;
    };
  };
}

export interface Services {
  readonly config: Config;
  readonly tables: Tables;
  readonly bus: Bus;
  readonly clock: Clock;
  readonly overrides: ServiceOverrides;
  /** The Azure credential (managed identity in Azure), created on first use. */
  credential(): Promise<TokenCredential>;
  /** One instance per key for the life of the process. */
  memo<T>(key: string, factory: () => T): T;
  /** Runs a cleanup when the services are closed. */
  onClose(fn: () => Promise<void> | void): void;
  close(): Promise<void>;
}

export function createServices(config: Config, overrides: ServiceOverrides = {}): Services {
  const cache = new Map<string, unknown>();
  const closers: Array<() => Promise<void> | void> = [];
  let credentialPromise: Promise<TokenCredential> | undefined;

  const credential = (): Promise<TokenCredential> => {
    credentialPromise ??= overrides.credential
      ? Promise.resolve(overrides.credential)
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
    ...((overrides.tablePrefix ?? config.TABLE_PREFIX)
      ? { prefix: overrides.tablePrefix ?? config.TABLE_PREFIX }
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
    clock: overrides.clock ?? systemClock,
    overrides,
    credential,
    memo<T>(key: string, factory: () => T): T {
      if (!cache.has(key)) cache.set(key, factory());
      return cache.get(key) as T;
    },
    onClose(fn) {
      closers.push(fn);
    },
    async close() {
      await Promise.allSettled(closers.splice(0).map(async (fn) => fn()));
      await bus.close();
    },
  };
}
