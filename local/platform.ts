/**
 * Everything that stands in for the cloud on a laptop: Azurite (tables), the Service Bus
 * emulator, and simulators of Supabase, Loops, Stripe and ARM for every external service whose
 * real endpoint is not configured. Used by `npm start` (local/host.ts) and by the tests.
 */
import { randomUUID } from "node:crypto";

import type { TokenCredential } from "@azure/core-auth";

import { loadConfig, type Config } from "../lib/config.js";
import { createSandboxGateway, type SandboxGateway } from "./sandbox-gateway.js";
import type { GatewayHostOptions } from "../lib/gateway/host.js";
import {
  createServices,
  systemClock,
  type Clock,
  type ServiceOptions,
  type Services,
} from "../lib/services.js";
import { startAzurite, type AzuriteHandle } from "./azurite.js";
import { LOCAL, localGrafanaSessionKeys, localSecretKeys } from "./defaults.js";
import { startLocalGateway } from "./gateway-standin.js";
import { createSandboxGrafanaHosts, type SandboxGrafanaHosts } from "./grafana-hosts.js";
import { startGrafanaStandIn } from "./grafana-standin.js";
import { startServiceBusEmulator, type ServiceBusEmulator } from "./service-bus/index.js";
import {
  armSimulatorTransport,
  startArmSimulator,
  type ArmSimulator,
  type RunCommandExecutor,
} from "./simulators/arm.js";
import { startLoopsSimulator, type LoopsSimulator } from "./simulators/loops.js";
import { startStripeSimulator, type StripeSimulator } from "./simulators/stripe.js";
import {
  makeDemoOrg,
  startSupabaseSimulator,
  type SupabaseSimulator,
} from "./simulators/supabase.js";

export interface PlatformOptions {
  /** Environment overrides (real endpoints, secrets); anything unset gets a local default. */
  env?: Record<string, string | undefined>;
  /** Public base URL of the host (the SPA origin). */
  publicBaseUrl?: string;
  /** Reuse running Azurite / emulator (tests start them once in the global setup). */
  storageConnection?: string;
  serviceBusConnection?: string;
  /** Persist table data in this folder instead of memory. */
  dataDir?: string;
  /** ms a simulated deployment takes. */
  deploymentDelayMs?: number;
  /** ms a simulated ARM delete takes (default 0: gone when the DELETE is answered). */
  deleteDelayMs?: number;
  /** Where the Stripe simulator delivers signed webhooks. */
  stripeWebhookUrl?: string;
  tablePrefix?: string;
  clock?: Clock;
  /** Runs the gateway's pushed scripts (default: the sandbox stand-in that decodes them). */
  runCommandExecutor?: RunCommandExecutor;
  /** Where the gateway's nginx runs when it is not the gateway VM (a test's temp prefix). */
  gatewayHost?: GatewayHostOptions;
  /** Sandbox mode (the demo pages of the local host); default on, `SANDBOX=false` in env turns it off. */
  sandbox?: boolean;
}

export interface Platform {
  /** Sandbox mode: the local host adds its demo pages (`/_local/...`, the sandbox Grafana). */
  sandbox: boolean;
  env: Record<string, string>;
  config: Config;
  services: Services;
  azurite?: AzuriteHandle;
  serviceBus?: ServiceBusEmulator;
  supabase?: SupabaseSimulator;
  loops?: LoopsSimulator;
  stripe?: StripeSimulator;
  arm?: ArmSimulator;
  /** The simulated gateway VM (with the ARM simulator): applied nginx config, probe answers. */
  gateway?: SandboxGateway;
  /** The simulated Grafana VMs' alerting provisioning (with the ARM simulator). */
  grafanaHosts?: SandboxGrafanaHosts;
  /** What was started, for the start-up banner. */
  started: Array<{ name: string; url: string }>;
  close(): Promise<void>;
}

const staticCredential: TokenCredential = {
  getToken: () =>
    Promise.resolve({ token: "local-simulator-token", expiresOnTimestamp: Date.now() + 3600_000 }),
};

export async function startPlatform(opts: PlatformOptions = {}): Promise<Platform> {
  const given = opts.env ?? {};
  const has = (key: string) => Boolean(given[key]?.trim());
  const closers: Array<() => Promise<void>> = [];
  const started: Platform["started"] = [];
  const result: Partial<Platform> = {};

  const close = async () => {
    for (const fn of closers.splice(0).reverse()) await fn().catch(() => undefined);
  };

  try {
    const publicBaseUrl = opts.publicBaseUrl ?? given.PUBLIC_BASE_URL ?? "http://localhost:7071";
    const env: Record<string, string> = {
      PUBLIC_BASE_URL: publicBaseUrl,
      SECRET_KEYS: localSecretKeys(),
      SESSION_SECRET: "local-session-secret-not-for-production-use",
      LOOPS_TX_VERIFICATION_CODE: "local-tx-verification-code",
      LOOPS_TX_INSTANCE_READY: "local-tx-instance-ready",
      LOOPS_TX_TRIAL_ENDING: "local-tx-trial-ending",
      LOOPS_TX_PAYMENT_FAILED: "local-tx-payment-failed",
      LOOPS_TX_INSTANCE_DELETED: "local-tx-instance-deleted",
      LOOPS_TX_INSTANCE_FAILED: "local-tx-instance-failed",
      AZURE_SUBSCRIPTION_ID: LOCAL.subscriptionId,
      GRAFANA_RESOURCE_GROUP: LOCAL.grafanaResourceGroup,
      GRAFANA_TEMPLATE_SPEC_ID: `/subscriptions/${LOCAL.subscriptionId}/resourceGroups/${LOCAL.gatewayResourceGroup}/providers/Microsoft.Resources/templateSpecs/grafana-host/versions/1.0.0`,
      GRAFANA_DOMAIN: LOCAL.grafanaDomain,
      DNS_ZONE_NAME: LOCAL.grafanaDomain,
      DNS_RESOURCE_GROUP: LOCAL.dnsResourceGroup,
      GATEWAY_RESOURCE_GROUP: LOCAL.gatewayResourceGroup,
      GATEWAY_VM_NAME: LOCAL.gatewayVmName,
      GATEWAY_PUBLIC_IP: "127.0.0.1",
      GATEWAY_PRIVATE_IP: "127.0.0.1",
      GRAFANA_SESSION_KEYS: localGrafanaSessionKeys(),
      GRAFANA_SUBNET_ID: `/subscriptions/${LOCAL.subscriptionId}/resourceGroups/${LOCAL.gatewayResourceGroup}/providers/Microsoft.Network/virtualNetworks/supafana-local-vnet/subnets/grafana`,
      GRAFANA_ADMIN_SSH_PUBLIC_KEY:
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILocalSandboxKeyNotUsedAnywhere local",
      PROVISION_POLL_SECONDS: "1",
    };

    // Table storage.
    if (opts.storageConnection) env.StorageConnection = opts.storageConnection;
    else if (!has("StorageConnection") && !has("StorageConnection__tableServiceUri")) {
      const azurite = await startAzurite(opts.dataDir ? { location: opts.dataDir } : {});
      closers.push(() => azurite.close());
      result.azurite = azurite;
      env.StorageConnection = azurite.connectionString;
      started.push({ name: "Azurite (tables)", url: `http://127.0.0.1:${azurite.port}` });
    }

    // Service Bus.
    if (opts.serviceBusConnection) env.ServiceBusConnection = opts.serviceBusConnection;
    else if (
      !has("ServiceBusConnection") &&
      !has("ServiceBusConnection__fullyQualifiedNamespace")
    ) {
      const bus = await startServiceBusEmulator({ port: 0 });
      closers.push(() => bus.close());
      result.serviceBus = bus;
      env.ServiceBusConnection = bus.connectionString;
      started.push({ name: "Service Bus emulator (AMQP)", url: `amqp://127.0.0.1:${bus.port}` });
    }

    // Supabase (OAuth + Management API).
    if (!has("SUPABASE_API_URL")) {
      const platformNow = opts.clock
        ? () => (opts.clock ?? systemClock).now().getTime()
        : undefined;
      const supabase = await startSupabaseSimulator({
        clientId: LOCAL.supabaseClientId,
        clientSecret: LOCAL.supabaseClientSecret,
        orgs: [makeDemoOrg()],
        autoApprove: true,
        // Token expiry and rate-limit windows follow the platform's clock, as the app's do.
        ...(platformNow ? { now: platformNow } : {}),
      });
      closers.push(() => supabase.close());
      result.supabase = supabase;
      Object.assign(env, {
        SUPABASE_API_URL: supabase.url,
        SUPABASE_CLIENT_ID: LOCAL.supabaseClientId,
        SUPABASE_CLIENT_SECRET: LOCAL.supabaseClientSecret,
      });
      started.push({ name: "Supabase simulator", url: supabase.url });
    }

    // Loops (e-mail).
    if (!has("LOOPS_API_URL")) {
      const loops = await startLoopsSimulator({ apiKey: LOCAL.loopsApiKey });
      closers.push(() => loops.close());
      result.loops = loops;
      Object.assign(env, { LOOPS_API_URL: `${loops.url}/api`, LOOPS_API_KEY: LOCAL.loopsApiKey });
      started.push({ name: "Loops simulator", url: loops.url });
    }

    // Stripe.
    if (!has("STRIPE_API_URL") && !has("STRIPE_SECRET_KEY")) {
      const stripe = await startStripeSimulator({
        secretKey: LOCAL.stripeSecretKey,
        webhookSecret: LOCAL.stripeWebhookSecret,
        priceId: LOCAL.stripePriceId,
        webhookUrl: opts.stripeWebhookUrl ?? `${publicBaseUrl}/api/webhooks/stripe`,
      });
      closers.push(() => stripe.close());
      result.stripe = stripe;
      Object.assign(env, {
        STRIPE_API_URL: stripe.url,
        STRIPE_SECRET_KEY: LOCAL.stripeSecretKey,
        STRIPE_WEBHOOK_SECRET: LOCAL.stripeWebhookSecret,
        STRIPE_PRICE_ID: LOCAL.stripePriceId,
      });
      started.push({ name: "Stripe simulator", url: stripe.url });
    }

    // Azure Resource Manager.
    let armPorts: ServiceOptions = {};
    if (!has("ARM_ENDPOINT")) {
      // The gateway VM stand-in: applies the consumer's push scripts and answers the readiness
      // probe / Grafana API for the hosts the applied config routes.
      // A routed host answers only while the ARM simulator has its VM and it is responsive.
      const gateway = createSandboxGateway({
        hostAnswers: (host) => result.arm?.hostAnswers(host.split(".")[0] ?? "") ?? false,
      });
      result.gateway = gateway;
      const platformClock = opts.clock;
      const simClock = platformClock ? () => platformClock.now().getTime() : undefined;
      const grafanaHosts = createSandboxGrafanaHosts(
        platformClock ? () => platformClock.now() : undefined,
      );
      result.grafanaHosts = grafanaHosts;
      const arm = await startArmSimulator({
        runCommandExecutor: grafanaHosts.executor(opts.runCommandExecutor ?? gateway.executor),
        secureParameters: ["cloudInit"],
        subscriptionId: LOCAL.subscriptionId,
        deploymentDelayMs: opts.deploymentDelayMs ?? 1500,
        ...(opts.deleteDelayMs ? { deleteDelayMs: opts.deleteDelayMs } : {}),
        ...(simClock ? { clock: simClock } : {}),
        gatewayVm: { resourceGroup: LOCAL.gatewayResourceGroup, name: LOCAL.gatewayVmName },
        dnsZone: { resourceGroup: LOCAL.dnsResourceGroup, name: LOCAL.grafanaDomain },
      });
      closers.push(() => arm.close());
      result.arm = arm;
      // The SDKs keep their https endpoint (bearer tokens never go over plain HTTP); the
      // simulator transport delivers every ARM request to the simulator instead.
      armPorts = {
        credential: staticCredential,
        armTransport: armSimulatorTransport(arm.url),
        grafanaHosts: gateway.grafanaHosts,
      };
      started.push({ name: "Azure Resource Manager simulator", url: arm.url });
    }

    if (opts.tablePrefix) env.TABLE_PREFIX = opts.tablePrefix;

    // Whatever the caller configured wins over the local defaults.
    for (const [k, v] of Object.entries(given)) if (v !== undefined && v.trim() !== "") env[k] = v;

    const config = loadConfig(env);
    const services = createServices(config, {
      ...armPorts,
      ...(opts.clock ? { clock: opts.clock } : {}),
      ...(opts.gatewayHost ? { gatewayHost: opts.gatewayHost } : {}),
    });
    closers.push(() => services.close());
    await services.tables.ensure();

    if (result.gateway) {
      // "Open Grafana" offline: the gateway's sign-in (a stand-in of the njs module) in front of a
      // Grafana stand-in that shows who it thinks the user is. `*.localhost` names resolve here.
      const routedBy = result.gateway;
      const grafana = await startGrafanaStandIn();
      closers.push(() => grafana.close());
      const signin = await startLocalGateway({
        services: () => services,
        routed: () => new Set(routedBy.routes().keys()),
        grafanaPort: grafana.port,
        port: Number(given.LOCAL_GATEWAY_PORT ?? 0),
      });
      closers.push(() => signin.close());
      started.push({
        name: "Gateway sign-in stand-in",
        url: `http://<ref>.${config.GRAFANA_DOMAIN}:${signin.port}`,
      });
      started.push({ name: "Grafana stand-in", url: `http://127.0.0.1:${grafana.port}` });
    }

    const sandboxSetting = given.SANDBOX?.trim().toLowerCase();
    const sandbox = sandboxSetting
      ? ["true", "1", "yes"].includes(sandboxSetting)
      : (opts.sandbox ?? true);
    const platform: Platform = { ...result, sandbox, env, config, services, started, close };
    return platform;
  } catch (err) {
    await close();
    throw err;
  }
}

export { LOCAL, localSecretKeys };

/** A random, table-safe prefix for one test file's tables. */
export const randomTablePrefix = () => `t${randomUUID().replace(/-/g, "").slice(0, 10)}`;
