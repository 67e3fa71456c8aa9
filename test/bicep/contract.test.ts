/**
 * The contracts between the Bicep and the code: app settings == the settings lib/config.ts reads,
 * tables == TABLE_NAMES, queues from bicep/queues.json, the Grafana host template spec's
 * parameters and outputs, secure parameters, identity-only access and least-privilege roles.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

import { beforeAll, describe, expect, it } from "vitest";
import type { Node, Parser } from "web-tree-sitter";

import { configSchema, loadConfig, settingNames } from "../../lib/config.js";
import { TABLE_NAMES } from "../../lib/storage/tables.js";
import { evaluateOutputs, type ArmTemplate } from "../../local/simulators/arm-template.js";
import {
  BICEP_DIR,
  type BicepFile,
  at,
  bicepParser,
  calls,
  decoratorArg,
  filesUnder,
  hasDecorator,
  loadBicep,
  objectEntries,
  referencedIdentifiers,
  rel,
  stringItems,
  stringValue,
} from "./bicep-ast.js";

/** Settings the Functions host reads itself (Flex Consumption, identity-based). */
const HOST_OWNED = [
  "AzureWebJobsStorage__accountName",
  "AzureWebJobsStorage__credential",
  "APPLICATIONINSIGHTS_CONNECTION_STRING",
  "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
];

/** Settings the Flex Consumption plan rejects, or the key-based variants we never use in Azure. */
const FORBIDDEN = [
  "FUNCTIONS_WORKER_RUNTIME",
  "FUNCTIONS_EXTENSION_VERSION",
  "WEBSITE_NODE_DEFAULT_VERSION",
  "WEBSITE_RUN_FROM_PACKAGE",
  "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
  "WEBSITE_CONTENTSHARE",
  "AzureWebJobsStorage",
  "StorageConnection",
  "ServiceBusConnection",
];

/** lib/config.ts settings deliberately not set in Azure, so their defaults (or "unset") apply. */
const LEFT_TO_DEFAULT: Record<string, string> = {
  StorageConnection: "connection string: Azure uses StorageConnection__tableServiceUri + identity",
  ServiceBusConnection:
    "connection string: Azure uses ServiceBusConnection__fullyQualifiedNamespace + identity",
  AZURE_CLIENT_ID: "the system-assigned identity is used",
  TABLE_PREFIX: "one environment per storage account",
  SUPABASE_API_URL: "the public Supabase API",
  LOOPS_API_URL: "the public Loops API",
  STRIPE_API_URL: "the public Stripe API",
  PROVISION_POLL_SECONDS: "tuning knob; the default is the design's 15 s",
  PROVISION_BUDGET_MINUTES: "tuning knob",
  PROVISION_MAX_ATTEMPTS: "tuning knob",
  KEY_ROTATION_DAYS: "tuning knob; the default is 30 days",
  SNAPSHOT_RETENTION_DAYS: "tuning knob; the default is a week",
  UPGRADE_BATCH_SIZE: "tuning knob; a rollout request may set its own batch",
  HEAL_AFTER_FAILED_PROBES: "tuning knob",
  HEAL_AFTER_MINUTES: "tuning knob",
};

/**
 * Template-spec parameters the provisioning code must pass (subnetId, adminSshPublicKey) that
 * lib/config.ts does not read yet. Allowed as app settings until config declares them.
 */
const AWAITING_CONFIG: string[] = [];

const SECRETS = [
  "SECRET_KEYS",
  "SESSION_SECRET",
  "SUPABASE_CLIENT_SECRET",
  "STRIPE_SECRET_KEY",
  "STRIPE_WEBHOOK_SECRET",
  "LOOPS_API_KEY",
  "SMTP_PASSWORD",
  "GRAFANA_SESSION_KEYS",
];

/** Outputs the deploy path relies on; the setting-named ones equal the app setting of that name. */
const CONTRACT_OUTPUTS = [
  "AZURE_SUBSCRIPTION_ID",
  "GRAFANA_RESOURCE_GROUP",
  "GRAFANA_TEMPLATE_SPEC_ID",
  "DNS_ZONE_NAME",
  "DNS_RESOURCE_GROUP",
  "GATEWAY_RESOURCE_GROUP",
  "GATEWAY_VM_NAME",
  "GATEWAY_PUBLIC_IP",
  "GRAFANA_DOMAIN",
  "FUNCTION_APP_NAME",
  "FUNCTION_APP_HOST_NAME",
];

/** Built-in roles the Bicep may assign (role definition GUID -> name). Anything else is a finding. */
const ALLOWED_BUILT_IN_ROLES: Record<string, string> = {
  "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
  "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
  "76199698-9eea-4c19-bc75-cec21354c6b6": "Storage Table Data Reader",
  "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39": "Azure Service Bus Data Sender",
  "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0": "Azure Service Bus Data Receiver",
  "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
  "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
  "a4417e6f-fecd-4de8-b567-7b0420556985": "Key Vault Certificates Officer",
  "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
};

const GUID_RE = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

let parser: Parser;
let files: BicepFile[];
let main: BicepFile;
const byPath = (p: string) => {
  const f = files.find((x) => rel(x.path) === p);
  if (!f) throw new Error(`no ${p}`);
  return f;
};

beforeAll(async () => {
  parser = await bicepParser();
  files = filesUnder(BICEP_DIR, ".bicep").map((p) => loadBicep(parser, p));
  main = byPath("bicep/main.bicep");
});

function appSettings(): Map<string, Node> {
  const entries = objectEntries(main.variable("appSettings"));
  expect(entries.size).toBeGreaterThan(20);
  return entries;
}

describe("app settings (main.bicep) and lib/config.ts", () => {
  it("when the app settings are listed, then each is a setting config reads or a host-owned one", () => {
    const allowed = new Set([...settingNames, ...HOST_OWNED, ...AWAITING_CONFIG]);
    const unknown = [...appSettings().keys()].filter((k) => !allowed.has(k));
    expect(unknown).toEqual([]);
  });

  it("when config's settings are listed, then each is set in Azure or deliberately left to its default", () => {
    const set = new Set(appSettings().keys());
    const neither = settingNames.filter((n) => !set.has(n) && !(n in LEFT_TO_DEFAULT));
    expect(neither).toEqual([]);
    const both = Object.keys(LEFT_TO_DEFAULT).filter((n) => set.has(n));
    expect(both).toEqual([]);
  });

  it("when a setting is left to its default, then config knows it and accepts it being unset", () => {
    const shape = configSchema.shape as Record<
      string,
      { safeParse(v: unknown): { success: boolean } }
    >;
    for (const name of Object.keys(LEFT_TO_DEFAULT)) {
      expect(settingNames, `${name} is no longer in lib/config.ts`).toContain(name);
      expect(shape[name]?.safeParse(undefined).success, `${name} is required by config`).toBe(true);
    }
  });

  it("when the host's settings are checked, then they are identity-based and Flex-compatible", () => {
    const settings = appSettings();
    for (const name of HOST_OWNED) expect(settings.has(name), name).toBe(true);
    for (const name of FORBIDDEN) expect(settings.has(name), name).toBe(false);
    expect(stringValue(settings.get("AzureWebJobsStorage__credential"))).toBe("managedidentity");
    expect(stringValue(settings.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING"))).toBe(
      "Authorization=AAD",
    );
    expect(settings.get("StorageConnection__tableServiceUri")?.text).toBe(
      "storage.outputs.tableEndpoint",
    );
    expect(settings.get("ServiceBusConnection__fullyQualifiedNamespace")?.text).toBe(
      "serviceBus.outputs.fullyQualifiedNamespace",
    );
  });

  it("when a setting holds a secret, then its value is a Key Vault reference to the secret of that setting", () => {
    const settings = appSettings();
    const secretNames = objectEntries(main.variable("keyVaultSecretNames"));
    expect([...secretNames.keys()].sort()).toEqual([...SECRETS].sort());
    for (const name of SECRETS) {
      const value = settings.get(name)?.text ?? "";
      expect(value, name).toContain(
        "'@Microsoft.KeyVault(SecretUri=${vaultUri}secrets/${keyVaultSecretNames." + name + "}/)'",
      );
      expect(stringValue(secretNames.get(name)), name).toMatch(/^[a-z0-9-]{1,127}$/);
    }
    for (const [name, value] of settings) {
      if (!SECRETS.includes(name)) expect(value.text, name).not.toContain("@Microsoft.KeyVault");
    }
  });

  it("when the queue settings are read, then they come from the queues declared in queues.json", () => {
    const settings = appSettings();
    expect(settings.get("PROVISIONING_QUEUE")?.text).toBe(
      "serviceBus.outputs.queueNamesByKey.provisioning",
    );
    expect(settings.get("GATEWAY_QUEUE")?.text).toBe("serviceBus.outputs.queueNamesByKey.gateway");
  });

  it("when main.bicep's outputs are listed, then the contract outputs exist and equal the settings they feed", () => {
    const outputs = new Map(main.outputs.map((o) => [o.name, o]));
    for (const name of CONTRACT_OUTPUTS) expect(outputs.has(name), name).toBe(true);
    const settings = appSettings();
    for (const [name, output] of outputs) {
      expect(name, "outputs are SCREAMING_SNAKE").toMatch(/^[A-Z][A-Z0-9_]*$/);
      if (settingNames.includes(name) || AWAITING_CONFIG.includes(name)) {
        expect(output.value.text, name).toBe(settings.get(name)?.text);
      }
    }
  });
});

/**
 * What the deployment makes of an expression, for the shapes that matter to config validation:
 * string interpolation, params (with their defaults), vars, and sample values for module outputs
 * and Azure functions.
 */
const SAMPLES: Record<string, string> = {
  environmentName: "dev",
  grafanaDomain: "Grafana.Example.com",
  supabaseClientId: "supabase-client-id",
  stripePriceId: "price_123",
  adminSshPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ operator@example",
  "loopsTransactionalIds.verificationCode": "tx-code",
  "loopsTransactionalIds.instanceReady": "tx-ready",
  "loopsTransactionalIds.trialEnding": "tx-trial",
  "loopsTransactionalIds.paymentFailed": "tx-payment",
  "loopsTransactionalIds.instanceDeleted": "tx-deleted",
  "loopsTransactionalIds.instanceFailed": "",
  "storage.outputs.name": "stdevabcdefghijklm",
  "storage.outputs.tableEndpoint": "https://stdevabcdefghijklm.table.core.windows.net/",
  "serviceBus.outputs.fullyQualifiedNamespace": "sb-supafana-dev-abc.servicebus.windows.net",
  "serviceBus.outputs.queueNamesByKey.provisioning": "provisioning",
  "serviceBus.outputs.queueNamesByKey.gateway": "gateway",
  "monitoring.outputs.appInsightsConnectionString":
    "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/",
  "keyVault.outputs.vaultUri": "https://kv-dev-abcdefghijklm.vault.azure.net/",
  "functionApp.outputs.defaultHostName": "func-supafana-dev-abc.azurewebsites.net",
  "web.outputs.hostName": "ep-supafana-dev-abcdefgh.z01.azurefd.net",
  "templateSpec.outputs.resourceId":
    "/subscriptions/6d6a2a1e-0b7c-4d3e-9a55-0f4d1e2c3b4a/resourceGroups/rg-supafana-dev/providers/Microsoft.Resources/templateSpecs/grafana-host",
  "network.outputs.grafanaSubnetId":
    "/subscriptions/6d6a2a1e-0b7c-4d3e-9a55-0f4d1e2c3b4a/resourceGroups/rg-supafana-dev/providers/Microsoft.Network/virtualNetworks/vnet-supafana-dev/subnets/snet-grafana",
  "dns.outputs.name": "grafana.example.com",
  "gateway.outputs.vmName": "vm-supafana-dev-gateway",
  "gateway.outputs.publicIpAddress": "20.61.1.2",
  "gateway.outputs.privateIpAddress": "10.40.0.4",
  "grafanaRg.name": "rg-supafana-dev-grafana",
  "platformRg.name": "rg-supafana-dev",
  "environment().resourceManager": "https://management.azure.com/",
  "subscription().subscriptionId": "6d6a2a1e-0b7c-4d3e-9a55-0f4d1e2c3b4a",
};

function evaluate(file: BicepFile, node: Node): string {
  if (node.text in SAMPLES) return SAMPLES[node.text] ?? "";
  switch (node.type) {
    case "string":
      return node.namedChildren
        .map((c) => {
          if (c.type === "interpolation") return evaluate(file, c.namedChildren[0] ?? c);
          return c.text;
        })
        .join("");
    case "number":
    case "boolean":
      return node.text;
    case "identifier": {
      const param = file.params.find((p) => p.name === node.text);
      if (param?.defaultValue) return evaluate(file, param.defaultValue);
      if (file.declarations.some((d) => d.kind === "var" && d.name === node.text)) {
        return evaluate(file, file.variable(node.text));
      }
      break;
    }
    case "member_expression": {
      const object = node.childForFieldName("object");
      const property = node.childForFieldName("property")?.text ?? "";
      if (
        object?.type === "identifier" &&
        file.declarations.some((d) => d.kind === "var" && d.name === object.text)
      ) {
        const value = objectEntries(file.variable(object.text)).get(property);
        if (value) return evaluate(file, value);
      }
      break;
    }
    case "call_expression": {
      const fn = node.childForFieldName("function")?.text;
      const args = node.childForFieldName("arguments")?.namedChildren ?? [];
      const first = args[0] ? evaluate(file, args[0]) : "";
      if (fn === "string") return first;
      if (fn === "toLower") return first.toLowerCase();
      if (fn === "empty") return String(first === "");
      break;
    }
    case "ternary_expression": {
      const condition = node.childForFieldName("condition");
      const yes = node.childForFieldName("consequence");
      const no = node.childForFieldName("alternative");
      if (condition && yes && no)
        return evaluate(file, condition) === "true" ? evaluate(file, yes) : evaluate(file, no);
      break;
    }
  }
  throw new Error(`no sample for ${node.type} \`${node.text}\``);
}

describe("app settings as deployed", () => {
  it("when the app settings are resolved as Azure would, then lib/config.ts accepts them", () => {
    const vaultSecrets: Record<string, string> = {
      "secret-keys": JSON.stringify({ "2026-01": Buffer.alloc(32, 7).toString("base64") }),
      "grafana-session-keys": JSON.stringify({ "2026-01": Buffer.alloc(32, 8).toString("base64") }),
      "session-secret": "s".repeat(48),
      "supabase-client-secret": "supabase-secret",
      "stripe-secret-key": "sk_live_123",
      "stripe-webhook-secret": "whsec_123",
      "loops-api-key": "loops-key",
      "smtp-password": "smtp-password",
    };
    const env: Record<string, string> = {};
    for (const [name, node] of appSettings()) {
      const value = evaluate(main, node);
      const reference =
        /^@Microsoft\.KeyVault\(SecretUri=https:\/\/kv-dev-[a-z0-9]+\.vault\.azure\.net\/secrets\/([a-z0-9-]+)\/\)$/.exec(
          value,
        );
      if (value.startsWith("@Microsoft.KeyVault"))
        expect(reference, `${name}: ${value}`).not.toBeNull();
      env[name] = reference ? (vaultSecrets[reference[1] ?? ""] ?? "") : value;
    }
    const config = loadConfig(env);
    // The SPA and /api share Front Door's origin (bicep/modules/web.bicep).
    expect(config.PUBLIC_BASE_URL).toBe("https://ep-supafana-dev-abcdefgh.z01.azurefd.net");
    expect(config.GRAFANA_DOMAIN).toBe("grafana.example.com");
    expect(config.GRAFANA_TEMPLATE_SPEC_ID).toBe(
      `${SAMPLES["templateSpec.outputs.resourceId"] ?? ""}/versions/1.0.0`,
    );
    expect(config.ARM_ENDPOINT).toBe("https://management.azure.com");
    expect(config.PROVISIONING_QUEUE).toBe("provisioning");
    expect(config.SMTP_PASSWORD).toBeUndefined();
    expect(config.SECRET_KEYS.current).toBe("2026-01");
  });
});

describe("tables and queues", () => {
  it("when the storage module's tables are listed, then they are exactly TABLE_NAMES", () => {
    const storage = byPath("bicep/modules/storage.bicep");
    expect(stringItems(storage.variable("tableNames")).sort()).toEqual([...TABLE_NAMES].sort());
    const tables = storage.resourcesOfType(
      "Microsoft.Storage/storageAccounts/tableServices/tables",
    );
    expect(tables).toHaveLength(1);
    expect(tables[0]?.loop).toBe(true);
    expect(tables[0]?.node.text).toContain("for tableName in tableNames");
  });

  it("when the Service Bus module declares queues, then each comes from queues.json with all its settings", () => {
    const sb = byPath("bicep/modules/serviceBus.bicep");
    const load = calls(sb.root, "loadJsonContent");
    expect(
      load.map((c) => stringValue(c.childForFieldName("arguments")?.namedChildren[0])),
    ).toEqual(["../queues.json"]);
    expect(sb.variable("queueDefinitions").text).toBe("loadJsonContent('../queues.json').queues");

    const queues = sb.resourcesOfType("Microsoft.ServiceBus/namespaces/queues");
    expect(queues).toHaveLength(1);
    const queue = queues[0];
    expect(queue?.loop).toBe(true);
    expect(queue?.node.text).toContain("for queue in queueDefinitions");
    expect(at(queue?.body, "name")?.text).toBe("queue.name");

    const definitions = (
      JSON.parse(readFileSync(join(BICEP_DIR, "queues.json"), "utf8")) as {
        queues: Array<Record<string, unknown>>;
      }
    ).queues;
    expect(definitions.map((q) => q.name)).toEqual(
      expect.arrayContaining(["provisioning", "gateway"]),
    );
    const properties = objectEntries(at(queue?.body, "properties"));
    const keys = new Set(definitions.flatMap((q) => Object.keys(q)).filter((k) => k !== "name"));
    for (const key of keys) expect(properties.get(key)?.text, key).toBe(`queue.${key}`);
    for (const q of definitions) {
      expect(typeof q.maxDeliveryCount).toBe("number");
      expect(q.requiresSession).toBe(true);
      expect(q.deadLetteringOnMessageExpiration).toBe(true);
    }
  });

  it("when the namespace is declared, then it has a tier with sessions and no SAS keys", () => {
    const sb = byPath("bicep/modules/serviceBus.bicep");
    expect(stringValue(sb.param("skuName").defaultValue)).toBe("Standard");
    const ns = sb.resourcesOfType("Microsoft.ServiceBus/namespaces")[0];
    expect(at(ns?.body, "properties.disableLocalAuth")?.text).toBe("true");
  });
});

/**
 * The Grafana host template as ARM receives it: bicep/compiled/grafana-host.json, the output of
 * `bicep build` (kept fresh by `npm run bicep:check`), which the ARM simulator also enforces.
 */
interface CompiledResource {
  type: string;
  apiVersion: string;
  name: string;
  scope?: string;
  location?: string;
  tags?: unknown;
  sku?: Record<string, unknown>;
  properties: Record<string, unknown>;
  dependsOn?: string[];
}
interface CompiledTemplate {
  metadata: { _generator: { name: string; version: string } };
  parameters: Record<
    string,
    { type: string; defaultValue?: unknown; minLength?: number; maxLength?: number }
  >;
  variables: Record<string, string>;
  resources: CompiledResource[];
  outputs: Record<string, { type: string; value: string }>;
}
const compiledHost = JSON.parse(
  readFileSync(join(BICEP_DIR, "compiled/grafana-host.json"), "utf8"),
) as CompiledTemplate;

/** A value at a dotted path (`a.b.0.c`) of a compiled resource. */
function pick(v: unknown, path: string): unknown {
  let cur = v;
  for (const k of path.split(".")) {
    if (typeof cur !== "object" || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

describe("Grafana host template spec (bicep/compiled/grafana-host.json)", () => {
  // What lib/azure/arm.ts putDeployment passes, with ARM's types (cloudInit is a securestring).
  const contract: Record<string, { type: string; required: boolean }> = {
    projectRef: { type: "string", required: true },
    vmName: { type: "string", required: false },
    location: { type: "string", required: false },
    vmSize: { type: "string", required: false },
    subnetId: { type: "string", required: true },
    cloudInit: { type: "securestring", required: true },
    adminSshPublicKey: { type: "string", required: true },
    dataDiskSizeGB: { type: "int", required: false },
    dataDiskSnapshotId: { type: "string", required: false },
    tags: { type: "object", required: false },
  };
  const params = compiledHost.parameters;
  const resources = (type: string) => compiledHost.resources.filter((r) => r.type === type);

  it("when the compiled template is read, then it was produced by the Bicep compiler", () => {
    expect(compiledHost.metadata._generator.name).toBe("bicep");
  });

  it("when its parameters are read, then they match the contract the provisioning code passes", () => {
    for (const [name, want] of Object.entries(contract)) {
      expect(params[name]?.type, name).toBe(want.type);
      expect(params[name]?.defaultValue === undefined, `${name} required`).toBe(want.required);
    }
    // Extra parameters must be optional, or the app's deployments would fail.
    for (const [name, p] of Object.entries(params)) {
      if (!(name in contract)) expect(p.defaultValue, `${name} must have a default`).toBeDefined();
    }
    expect(params.vmName?.defaultValue).toBe("[format('grafana-{0}', parameters('projectRef'))]");
    expect(params.dataDiskSizeGB?.defaultValue).toBe(16);
    expect(params.dataDiskSnapshotId?.defaultValue).toBe("");
    expect(params.vmSize?.defaultValue).toMatch(/^Standard_/);
    expect(params.projectRef).toMatchObject({ minLength: 20, maxLength: 20 });
    // The only secure parameter is the cloud-init.
    expect(Object.keys(params).filter((n) => /^secure/i.test(params[n]?.type ?? ""))).toEqual([
      "cloudInit",
    ]);
    // No regex constraint in ARM: the template fails the deployment itself for a bad ref.
    expect(compiledHost.variables.validRef).toBe(
      "[if(variables('refIsValid'), parameters('projectRef'), string(int('projectRef must match ^[a-z]{20}$')))]",
    );
  });

  it("when its outputs are read, then they are privateIpAddress (the NIC's) and vmName, both strings", () => {
    expect(Object.entries(compiledHost.outputs).map(([n, o]) => [n, o.type])).toEqual([
      ["privateIpAddress", "string"],
      ["vmName", "string"],
    ]);
    expect(compiledHost.outputs.privateIpAddress?.value).toMatch(
      /^\[reference\(resourceId\('Microsoft\.Network\/networkInterfaces', format\('\{0\}-nic', parameters\('vmName'\)\)\), '[\d-]+'\)\.ipConfigurations\[0\]\.properties\.privateIPAddress\]$/,
    );
  });

  it("when the cloud-init is used, then only once, base64-encoded as the VM's customData", () => {
    const text = JSON.stringify(compiledHost.resources);
    expect(text.split("parameters('cloudInit')")).toHaveLength(2);
    const vm = resources("Microsoft.Compute/virtualMachines")[0];
    expect(pick(vm, "properties.osProfile.customData")).toBe("[base64(parameters('cloudInit'))]");
    expect(JSON.stringify(compiledHost.outputs)).not.toContain("cloudInit");
    expect(JSON.stringify(compiledHost.variables)).not.toContain("cloudInit");
  });

  it("when a snapshot id is given, then the data disk is a copy of it, else an empty disk", () => {
    const [data] = resources("Microsoft.Compute/disks");
    // The creationData expression, evaluated as ARM does (the simulator's template interpreter).
    const template: ArmTemplate = {
      parameters: { dataDiskSnapshotId: { type: "string" } },
      variables: {},
      outputs: { creationData: { type: "object", value: pick(data, "properties.creationData") } },
    };
    const ctx = { subscriptionId: "s", resourceGroup: "rg", location: "eastus" };
    const snapshot = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/snapshots/x";
    const evaluated = (id: string) =>
      evaluateOutputs(template, { dataDiskSnapshotId: id }, ctx).creationData?.value;
    expect(evaluated("")).toEqual({ createOption: "Empty" });
    expect(evaluated(snapshot)).toEqual({ createOption: "Copy", sourceResourceId: snapshot });
  });

  it("when its resources are read, then names, disks, image, tags and networking follow the contract", () => {
    expect(compiledHost.resources.map((r) => r.type)).toEqual([
      "Microsoft.Network/networkInterfaces",
      "Microsoft.Compute/disks",
      "Microsoft.Compute/virtualMachines",
      "Microsoft.Resources/tags",
    ]);
    const [nic] = resources("Microsoft.Network/networkInterfaces");
    const [vm] = resources("Microsoft.Compute/virtualMachines");
    const [data] = resources("Microsoft.Compute/disks");
    expect(nic?.name).toBe("[format('{0}-nic', parameters('vmName'))]");
    expect(JSON.stringify(nic)).not.toContain("publicIPAddress");
    expect(pick(nic, "properties.ipConfigurations.0.properties.subnet.id")).toBe(
      "[parameters('subnetId')]",
    );
    expect(vm?.name).toBe("[parameters('vmName')]");
    expect(data?.name).toBe("[format('{0}-data', parameters('vmName'))]");
    expect(pick(data, "properties.diskSizeGB")).toBe("[parameters('dataDiskSizeGB')]");
    // Empty unless a snapshot id is given (evaluated below, by the template interpreter).
    expect(pick(data, "properties.creationData")).toBe(
      "[if(empty(parameters('dataDiskSnapshotId')), createObject('createOption', 'Empty'), createObject('createOption', 'Copy', 'sourceResourceId', parameters('dataDiskSnapshotId')))]",
    );
    expect(pick(vm, "properties.storageProfile.osDisk.deleteOption")).toBe("Delete");
    expect(pick(vm, "properties.storageProfile.osDisk.name")).toBe(
      "[format('{0}-osdisk', parameters('vmName'))]",
    );

    const dataDisks = pick(vm, "properties.storageProfile.dataDisks") as unknown[];
    expect(dataDisks).toHaveLength(1);
    expect(dataDisks[0]).toMatchObject({
      lun: 0,
      createOption: "Attach",
      deleteOption: "Detach",
      managedDisk: {
        id: "[resourceId('Microsoft.Compute/disks', format('{0}-data', parameters('vmName')))]",
      },
    });
    expect(vm?.dependsOn).toEqual(
      expect.arrayContaining([
        "[resourceId('Microsoft.Compute/disks', format('{0}-data', parameters('vmName')))]",
        "[resourceId('Microsoft.Network/networkInterfaces', format('{0}-nic', parameters('vmName')))]",
      ]),
    );

    expect(pick(vm, "properties.storageProfile.imageReference")).toMatchObject({
      publisher: "Canonical",
      offer: "ubuntu-24_04-lts",
    });
    expect(pick(vm, "properties.osProfile.linuxConfiguration.disablePasswordAuthentication")).toBe(
      true,
    );
    expect(pick(vm, "properties.diagnosticsProfile.bootDiagnostics")).toEqual({ enabled: true });

    // Every resource, including the OS disk Azure creates with the VM, carries supafana-ref.
    expect(compiledHost.variables.hostTags).toBe(
      "[union(parameters('tags'), createObject('supafana-ref', variables('validRef')))]",
    );
    for (const r of [nic, vm, data]) expect(r?.tags).toBe("[variables('hostTags')]");
    const [osTags] = resources("Microsoft.Resources/tags");
    expect(osTags?.scope).toBe(
      "[resourceId('Microsoft.Compute/disks', format('{0}-osdisk', parameters('vmName')))]",
    );
    expect(pick(osTags, "properties.tags")).toBe("[variables('hostTags')]");
    expect(osTags?.dependsOn).toEqual([
      "[resourceId('Microsoft.Compute/virtualMachines', parameters('vmName'))]",
    ]);
  });
});

describe("secrets and identity-only access", () => {
  /** Secure params of a file. */
  const secureParams = (f: BicepFile) =>
    new Set(f.params.filter((p) => hasDecorator(p, "secure")).map((p) => p.name));

  it("when a parameter's name says secret, password, token or key, then it is @secure()", () => {
    const offenders: string[] = [];
    for (const f of files) {
      for (const p of f.params) {
        const looksSecret =
          /secret|password|apikey|accesstoken|refreshtoken|privatekey|connectionstring|cloudinit/i.test(
            p.name,
          ) ||
          (/key$/i.test(p.name) && !/PublicKey$/.test(p.name));
        if (looksSecret && !hasDecorator(p, "secure")) offenders.push(`${rel(f.path)}: ${p.name}`);
      }
    }
    expect(offenders).toEqual([]);
  });

  it("when a @secure() parameter is used, then only as base64() customData, never in an output or var", () => {
    const offenders: string[] = [];
    for (const f of files) {
      const secure = secureParams(f);
      if (secure.size === 0) continue;
      for (const d of f.declarations) {
        if (d.kind !== "output" && d.kind !== "var") continue;
        for (const id of referencedIdentifiers(d.node)) {
          if (secure.has(id)) offenders.push(`${rel(f.path)}: ${d.kind} ${d.name} uses ${id}`);
        }
      }
      for (const id of f.root.descendantsOfType("identifier")) {
        if (!secure.has(id.text) || id.parent?.type === "parameter_declaration") continue;
        const call = id.parent?.parent;
        const prop = call?.parent;
        const asCustomData =
          call?.type === "call_expression" &&
          call.childForFieldName("function")?.text === "base64" &&
          prop?.type === "object_property" &&
          prop.namedChildren[0]?.text === "customData";
        if (!asCustomData) {
          offenders.push(
            `${rel(f.path)}:${id.startPosition.row + 1} ${id.text} used outside customData`,
          );
        }
      }
    }
    expect(offenders).toEqual([]);
  });

  it("when the Bicep is searched, then no key, SAS or connection string with a key is read or written", () => {
    const offenders: string[] = [];
    const patterns = [
      /listKeys\s*\(/i,
      /listConnectionStrings\s*\(/i,
      /listAccountSas\s*\(/i,
      /listServiceSas\s*\(/i,
      /AccountKey=/i,
      /SharedAccessKey/i,
      /primaryKey|secondaryKey/i,
    ];
    for (const path of [
      ...filesUnder(BICEP_DIR, ".bicep"),
      ...filesUnder(BICEP_DIR, ".bicepparam"),
    ]) {
      const text = readFileSync(path, "utf8");
      for (const re of patterns) if (re.test(text)) offenders.push(`${rel(path)}: ${re.source}`);
    }
    expect(offenders).toEqual([]);
  });

  it("when data services are declared, then local (key) authentication is off", () => {
    const storage = byPath("bicep/modules/storage.bicep").resourcesOfType(
      "Microsoft.Storage/storageAccounts",
    )[0];
    expect(at(storage?.body, "properties.allowSharedKeyAccess")?.text).toBe("false");
    const vault = byPath("bicep/modules/keyVault.bicep").resourcesOfType(
      "Microsoft.KeyVault/vaults",
    )[0];
    expect(at(vault?.body, "properties.enableRbacAuthorization")?.text).toBe("true");
    const insights = byPath("bicep/modules/monitoring.bicep").resourcesOfType(
      "Microsoft.Insights/components",
    )[0];
    expect(at(insights?.body, "properties.DisableLocalAuth")?.text).toBe("true");
    const fn = byPath("bicep/modules/functionApp.bicep");
    for (const policy of fn.resourcesOfType(
      "Microsoft.Web/sites/basicPublishingCredentialsPolicies",
    )) {
      expect(at(policy.body, "properties.allow")?.text).toBe("false");
    }
    const site = fn.resourcesOfType("Microsoft.Web/sites")[0];
    expect(stringValue(at(site?.body, "identity.type"))).toBe("SystemAssigned");
    expect(stringValue(at(site?.body, "properties.functionAppConfig.runtime.name"))).toBe("node");
    expect(stringValue(fn.param("nodeVersion").defaultValue)).toBe("22");
    expect(
      stringValue(
        at(site?.body, "properties.functionAppConfig.deployment.storage.authentication.type"),
      ),
    ).toBe("SystemAssignedIdentity");
  });
});

describe("roles", () => {
  const assignments = () =>
    files.flatMap((f) =>
      f.resourcesOfType("Microsoft.Authorization/roleAssignments").map((r) => ({ f, r })),
    );

  it("when role assignments and definitions are declared, then every name is a guid(...)", () => {
    const all = [
      ...assignments(),
      ...files.flatMap((f) =>
        f.resourcesOfType("Microsoft.Authorization/roleDefinitions").map((r) => ({ f, r })),
      ),
    ];
    expect(all.length).toBeGreaterThan(15);
    const offenders = all
      .filter(({ r }) => !/^guid\(/.test(at(r.body, "name")?.text ?? ""))
      .map(({ f, r }) => `${rel(f.path)}: ${r.name}`);
    expect(offenders).toEqual([]);
  });

  it("when a built-in role is assigned, then it is one of the narrow data-plane roles (no Owner, Contributor...)", () => {
    const found = new Set<string>();
    for (const f of files) for (const g of f.text.match(GUID_RE) ?? []) found.add(g.toLowerCase());
    const unexpected = [...found].filter((g) => !(g in ALLOWED_BUILT_IN_ROLES));
    expect(unexpected).toEqual([]);
  });

  it("when the function identity gets a role in the platform group, then it is scoped to one resource", () => {
    const rbac = byPath("bicep/modules/platformRbac.bicep");
    const forFunction = rbac
      .resourcesOfType("Microsoft.Authorization/roleAssignments")
      .filter((r) => at(r.body, "properties.principalId")?.text === "functionPrincipalId");
    expect(forFunction.map((r) => r.name).sort()).toEqual(
      [
        "functionBlobOwner",
        "functionDnsARecords",
        "functionGatewayRunCommand",
        "functionMetricsPublisher",
        "functionQueueReceiver",
        "functionQueueSender",
        "functionSecretsUser",
        "functionSubnetJoin",
        "functionTableContributor",
        "functionTemplateSpecReader",
      ].sort(),
    );
    for (const r of forFunction) expect(at(r.body, "scope"), `${r.name} has a scope`).toBeDefined();
    expect(at(rbac.resource("functionQueueSender").body, "scope")?.text).toBe("queues[i]");
    expect(at(rbac.resource("functionGatewayRunCommand").body, "scope")?.text).toBe("gatewayVm");
    expect(at(rbac.resource("functionDnsARecords").body, "scope")?.text).toBe("zone");
    expect(at(rbac.resource("functionSubnetJoin").body, "scope")?.text).toBe("vnet::grafanaSubnet");
    expect(at(rbac.resource("functionTemplateSpecReader").body, "scope")?.text).toBe(
      "templateSpec",
    );
    // The gateway VM reads the certificate's secret only.
    expect(at(rbac.resource("gatewayCertificateReader").body, "scope")?.text).toBe(
      "vault::certificateSecret",
    );
  });

  it("when custom roles are defined, then their actions are exactly what the app does and nothing administrative", () => {
    const roles = byPath("bicep/modules/roles.bicep");
    const actionsOf = (name: string) =>
      stringItems(
        at(roles.resource(name).body, "properties.permissions")
          ?.namedChildren[0]?.namedChildren.find((p) => p.namedChildren[0]?.text === "actions")
          ?.namedChildren.at(-1),
      );
    const all = roles.resourcesOfType("Microsoft.Authorization/roleDefinitions").map((r) => r.name);
    expect(all.sort()).toEqual(
      [
        "dnsARecords",
        "gatewayRunCommand",
        "grafanaHosts",
        "operationStatusReader",
        "subnetJoin",
        "templateSpecReader",
      ].sort(),
    );
    for (const name of all) {
      const actions = actionsOf(name);
      expect(actions.length, name).toBeGreaterThan(0);
      for (const a of actions) {
        expect(a, name).not.toMatch(
          /^\*|^Microsoft\.Authorization|\/\*\/|^Microsoft\.[A-Za-z]+\/\*$/,
        );
      }
    }
    expect(actionsOf("gatewayRunCommand")).toContain(
      "Microsoft.Compute/virtualMachines/runCommand/action",
    );
    expect(
      actionsOf("gatewayRunCommand").some((a) => a.endsWith("/write") || a.endsWith("/delete")),
    ).toBe(false);
    expect(
      actionsOf("dnsARecords")
        .filter((a) => /write|delete/.test(a))
        .every((a) => a.startsWith("Microsoft.Network/dnszones/A/")),
    ).toBe(true);
    expect(actionsOf("subnetJoin")).toContain(
      "Microsoft.Network/virtualNetworks/subnets/join/action",
    );
    expect(actionsOf("templateSpecReader")).toContain(
      "Microsoft.Resources/templateSpecs/versions/read",
    );
    expect(actionsOf("grafanaHosts")).toEqual(
      expect.arrayContaining([
        "Microsoft.Resources/deployments/*",
        "Microsoft.Compute/virtualMachines/*",
        "Microsoft.Network/networkInterfaces/*",
        "Microsoft.Compute/disks/write",
        "Microsoft.Compute/disks/delete",
        // The daily data-disk snapshots: created, listed and pruned, never exported.
        "Microsoft.Compute/snapshots/read",
        "Microsoft.Compute/snapshots/write",
        "Microsoft.Compute/snapshots/delete",
      ]),
    );
    for (const exported of [
      "Microsoft.Compute/disks/beginGetAccess/action",
      "Microsoft.Compute/snapshots/beginGetAccess/action",
      "Microsoft.Compute/snapshots/*",
    ]) {
      expect(actionsOf("grafanaHosts")).not.toContain(exported);
    }
  });
});

describe("network, gateway and monitoring", () => {
  it("when the Grafana subnet's NSG is read, then inbound is the gateway subnet on the Grafana port only and outbound internet only", () => {
    const network = byPath("bicep/modules/network.bicep");
    const nsg = network.resource("grafanaNsg");
    const rules = at(nsg.body, "properties.securityRules")?.namedChildren ?? [];
    const rule = (name: string) => rules.find((r) => stringValue(at(r, "name")) === name);
    const allowIn = rule("AllowGrafanaFromGateway");
    expect(at(allowIn, "properties.sourceAddressPrefix")?.text).toBe("gatewaySubnetPrefix");
    expect(at(allowIn, "properties.destinationPortRange")?.text).toBe("string(grafanaPort)");
    expect(stringValue(at(rule("DenyAllInbound"), "properties.access"))).toBe("Deny");
    expect(
      stringValue(at(rule("AllowInternetOutbound"), "properties.destinationAddressPrefix")),
    ).toBe("Internet");
    expect(stringValue(at(rule("DenyAllOtherOutbound"), "properties.access"))).toBe("Deny");
    const allows = rules.filter((r) => stringValue(at(r, "properties.access")) === "Allow");
    expect(allows).toHaveLength(2);
  });

  it("when the gateway is declared, then it has a public IP, an identity and the cloud-init with placeholders filled", () => {
    const gw = byPath("bicep/modules/gateway.bicep");
    const vm = gw.resourcesOfType("Microsoft.Compute/virtualMachines")[0];
    expect(stringValue(at(vm?.body, "identity.type"))).toBe("SystemAssigned");
    expect(at(vm?.body, "properties.osProfile.customData")?.text).toBe("base64(cloudInit)");
    expect(gw.resourcesOfType("Microsoft.Network/publicIPAddresses")).toHaveLength(1);
    const yaml = readFileSync(join(BICEP_DIR, "gateway", "cloud-init.yaml"), "utf8");
    const placeholders = new Set(yaml.match(/__[A-Z_]+__/g));
    const replaced = new Set(
      calls(gw.variable("cloudInit"), "replace").map((c) =>
        stringValue(c.childForFieldName("arguments")?.namedChildren[1]),
      ),
    );
    expect([...placeholders].sort()).toEqual([...replaced].filter(Boolean).sort());
    expect(main.outputs.find((o) => o.name === "GATEWAY_VM_NAME")?.value.text).toBe(
      "gateway.outputs.vmName",
    );
    expect(main.outputs.find((o) => o.name === "GATEWAY_PUBLIC_IP")?.value.text).toBe(
      "gateway.outputs.publicIpAddress",
    );
  });

  it("when the monitoring module is read, then it alerts on dead letters per queue, failure rate and orphans", () => {
    const mon = byPath("bicep/modules/monitoring.bicep");
    const dlq = mon.resourcesOfType("Microsoft.Insights/metricAlerts")[0];
    expect(dlq?.loop).toBe(true);
    expect(dlq?.node.text).toContain("for queueName in queueNames");
    expect(dlq?.body?.text).toContain("'DeadletteredMessages'");
    expect(dlq?.body?.text).toContain("'EntityName'");
    const logAlerts = mon.resourcesOfType("Microsoft.Insights/scheduledQueryRules");
    const texts = logAlerts.map((r) => r.body?.text ?? "");
    expect(texts.some((t) => t.includes("query: orphansQuery"))).toBe(true);
    const orphans = mon.variable("orphansQuery").text;
    expect(orphans).toMatch(/^'''\ntraces\n\| where message has_any \("orphans", "orphaned"\)/);
    // The reconciler's own words (lib/reconciler): the query must match its orphan log line.
    const reconciler = readFileSync(join(BICEP_DIR, "..", "lib", "reconciler", "index.ts"), "utf8");
    expect(reconciler, "the reconciler no longer logs a line the orphans alert matches").toMatch(
      /\b(orphans|orphaned)\b/,
    );
    expect(mon.variable("failureRateQuery").text).toContain("exceptions");
    expect(mon.variable("failureRateQuery").text).toContain("success == false");
    expect(main.resource("monitoring").body?.text).toContain(
      "queueNames: serviceBus.outputs.queueNames",
    );
  });
});

describe("conventions", () => {
  it("when any parameter is declared, then it has a @description starting with Required. or Optional.", () => {
    const offenders: string[] = [];
    for (const f of files) {
      for (const p of f.params) {
        const text = stringValue(decoratorArg(p, "description")) ?? "";
        if (!/^(Required|Optional|Conditional)\. \S/.test(text))
          offenders.push(`${rel(f.path)}: ${p.name}`);
      }
    }
    expect(offenders).toEqual([]);
  });

  it("when any output is declared, then it has a @description", () => {
    const offenders = files.flatMap((f) =>
      f.outputs
        .filter((o) => !stringValue(decoratorArg(o, "description")))
        .map((o) => `${rel(f.path)}: ${o.name}`),
    );
    expect(offenders).toEqual([]);
  });

  it("when any file is read, then it starts with metadata name and description", () => {
    for (const f of files) {
      expect(f.text.startsWith("metadata name = '"), rel(f.path)).toBe(true);
      expect(f.text, rel(f.path)).toMatch(/^metadata description = '/m);
    }
  });
});
