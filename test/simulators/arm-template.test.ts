import { readFileSync } from "node:fs";

import type { TokenCredential } from "@azure/core-auth";
import { afterEach, describe, expect, it } from "vitest";

import { getDeployment, putDeployment, vmNameFor } from "../../lib/azure/arm.js";
import { ArmRequestError } from "../../lib/azure/errors.js";
import { loadConfig } from "../../lib/config.js";
import { renderCloudInit } from "../../lib/grafana-host/index.js";
import { createServices, type Services } from "../../lib/services.js";
import {
  armSimulatorTransport,
  startArmSimulator,
  type ArmSimulator,
} from "../../local/simulators/arm.js";
import {
  checkParameters,
  evaluateOutputs,
  evaluateString,
  GRAFANA_HOST_TEMPLATE_URL,
  grafanaHostTemplate,
  parseTemplate,
  TemplateExpressionError,
  type ExpressionContext,
} from "../../local/simulators/arm-template.js";
import { validEnv } from "../helpers/env.js";
import { randomRef } from "../helpers/platform.js";

const SUB = "00000000-0000-4000-8000-0000000000aa";
const RG = "rg-grafana";
const SUBNET = `/subscriptions/${SUB}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/grafana`;
const ctx: ExpressionContext = { subscriptionId: SUB, resourceGroup: RG, location: "westeurope" };

/** Only the parameters the template requires. */
const required = (ref: string): Record<string, unknown> => ({
  projectRef: { value: ref },
  subnetId: { value: SUBNET },
  cloudInit: { value: "#cloud-config\n" },
  adminSshPublicKey: { value: "ssh-ed25519 AAAA test" },
});

describe("the compiled Grafana host template as the simulator's contract", () => {
  it("when the simulator loads its template, then it is the committed compile of grafana-host.bicep", () => {
    const raw = JSON.parse(readFileSync(GRAFANA_HOST_TEMPLATE_URL, "utf8")) as {
      metadata: { _generator: { name: string } };
      parameters: Record<string, unknown>;
    };
    expect(raw.metadata._generator.name).toBe("bicep");
    expect(Object.keys(grafanaHostTemplate().parameters)).toEqual(Object.keys(raw.parameters));
  });

  it("when only the required parameters are given, then they pass and every default is evaluated", () => {
    const ref = randomRef();
    const checked = checkParameters(grafanaHostTemplate(), required(ref), ctx);
    expect(checked).toEqual({
      ok: true,
      values: {
        projectRef: ref,
        vmName: `grafana-${ref}`,
        location: "westeurope",
        vmSize: "Standard_B2s",
        subnetId: SUBNET,
        cloudInit: "#cloud-config\n",
        adminSshPublicKey: "ssh-ed25519 AAAA test",
        adminUsername: "supafana",
        dataDiskSizeGB: 16,
        dataDiskSnapshotId: "",
        diskType: "StandardSSD_LRS",
        tags: {},
      },
    });
  });

  it("when names differ in case or a secure value is a Key Vault reference, then ARM accepts them", () => {
    const ref = randomRef();
    const { projectRef, cloudInit: _c, ...rest } = required(ref);
    const checked = checkParameters(
      grafanaHostTemplate(),
      {
        ...rest,
        PROJECTREF: projectRef,
        cloudInit: { reference: { keyVault: { id: "/kv" }, secretName: "ci" } },
      },
      ctx,
    );
    expect(checked.ok).toBe(true);
  });

  const bad: Array<[string, (p: Record<string, unknown>) => void, RegExp]> = [
    [
      "a 20-character ref with a digit (the template's own check)",
      (p) => (p.projectRef = { value: "abcdefghijklmnopqrs1" }),
      /The template variable 'validRef' is not valid: The template language function 'int' was invoked/,
    ],
    [
      "a 20-character ref in upper case",
      (p) => (p.projectRef = { value: "ABCDEFGHIJKLMNOPQRST" }),
      /The template variable 'validRef' is not valid/,
    ],
    [
      "an unknown parameter",
      (p) => (p.grafanaAdminPassword = { value: "x" }),
      /The template parameters 'grafanaAdminPassword' in the parameters file are not valid; they are not present in the original template.*'projectRef, vmName, location/,
    ],
    [
      "a missing required string",
      (p) => delete p.subnetId,
      /The value for the template parameter 'subnetId' is not provided/,
    ],
    [
      "a missing secure string",
      (p) => delete p.cloudInit,
      /The value for the template parameter 'cloudInit' is not provided/,
    ],
    [
      "a null required value",
      (p) => (p.projectRef = { value: null }),
      /The value for the template parameter 'projectRef' is not provided/,
    ],
    [
      "a string for an int",
      (p) => (p.dataDiskSizeGB = { value: "16" }),
      /JToken type is not valid\. Expected 'Integer'\. Actual 'String'/,
    ],
    [
      "a fraction for an int",
      (p) => (p.dataDiskSizeGB = { value: 16.5 }),
      /Expected 'Integer'\. Actual 'Float'/,
    ],
    [
      "a string for an object",
      (p) => (p.tags = { value: "a=b" }),
      /Expected 'Object'\. Actual 'String'/,
    ],
    [
      "an array for an object",
      (p) => (p.tags = { value: [] }),
      /Expected 'Object'\. Actual 'Array'/,
    ],
    [
      "a number for a secure string",
      (p) => (p.cloudInit = { value: 5 }),
      /Expected 'String'\. Actual 'Integer'/,
    ],
    [
      "a bare value without { value }",
      (p) => (p.vmSize = "Standard_B2s"),
      /'vmSize' must be an object/,
    ],
    [
      "a value outside allowedValues",
      (p) => (p.diskType = { value: "UltraSSD_LRS" }),
      /The value 'UltraSSD_LRS' is not part of the allowed value\(s\): 'Standard_LRS,StandardSSD_LRS,Premium_LRS'/,
    ],
    [
      "a string shorter than minLength",
      (p) => (p.projectRef = { value: "abc" }),
      /template parameter 'projectRef' is not valid\. Length of the value should be greater than or equal to '20'/,
    ],
    [
      "a string longer than maxLength",
      (p) => (p.vmName = { value: "v".repeat(65) }),
      /'vmName' is not valid\. Length of the value should be less than or equal to '64'/,
    ],
    [
      "an int below minValue",
      (p) => (p.dataDiskSizeGB = { value: 2 }),
      /'dataDiskSizeGB' is not valid\. The value should be greater than or equal to '4'/,
    ],
    [
      "an int above maxValue",
      (p) => (p.dataDiskSizeGB = { value: 2048 }),
      /'dataDiskSizeGB' is not valid\. The value should be less than or equal to '1024'/,
    ],
  ];

  it.each(bad)(
    "when a PUT has %s, then the check refuses it as ARM's InvalidTemplate",
    (_, mutate, message) => {
      const params = required(randomRef());
      mutate(params);
      const checked = checkParameters(grafanaHostTemplate(), params, ctx);
      expect(checked.ok).toBe(false);
      if (checked.ok) return;
      expect(checked.error.code).toBe("InvalidTemplate");
      expect(checked.error.message).toMatch(/^Deployment template validation failed: '.*'\.$/s);
      expect(checked.error.message).toMatch(message);
    },
  );

  it("when the outputs are evaluated, then they are the declared ones, read from the resources", () => {
    const ref = randomRef();
    const checked = checkParameters(grafanaHostTemplate(), required(ref), ctx);
    if (!checked.ok) throw new Error(checked.error.message);
    const nicId = `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Network/networkInterfaces/grafana-${ref}-nic`;
    const seen: string[] = [];
    const outputs = evaluateOutputs(grafanaHostTemplate(), checked.values, {
      ...ctx,
      lookup: (id) => {
        seen.push(id);
        return id === nicId
          ? { properties: { ipConfigurations: [{ properties: { privateIPAddress: "10.9.8.7" } }] } }
          : undefined;
      },
    });
    expect(outputs).toEqual({
      privateIpAddress: { type: "String", value: "10.9.8.7" },
      vmName: { type: "String", value: `grafana-${ref}` },
    });
    expect(seen).toEqual([nicId]);
    // Without the NIC, reference() fails as ARM's does.
    expect(() => evaluateOutputs(grafanaHostTemplate(), checked.values, ctx)).toThrow(
      /The Resource '.*-nic' was not found/,
    );
  });

  it("when expressions use escapes, child resource ids or unknown functions, then they evaluate as ARM's or fail by name", () => {
    const scope = {
      ...ctx,
      parameter: (n: string) => (n === "n" ? "x" : undefined),
      variable: (n: string) => (n === "v" ? { a: [1, 2] } : undefined),
    };
    expect(
      evaluateString(
        "[filter(range(0, 4), lambda('i', not(equals(lambdaVariables('i'), 1))))]",
        scope,
      ),
    ).toEqual([0, 2, 3]);
    expect(
      evaluateString("[union(variables('v'), createObject('b', length('abc')))]", scope),
    ).toEqual({ a: [1, 2], b: 3 });
    // if() evaluates only the branch it takes, as ARM's does.
    expect(
      evaluateString("[if(contains('abc', 'b'), substring('xyz', 1, 1), int('no'))]", scope),
    ).toBe("y");
    expect(() => evaluateString("[int('no')]", scope)).toThrow(
      /'int' was invoked with a parameter that is not valid/,
    );
    expect(evaluateString("[[not an expression]", scope)).toBe("[not an expression]");
    expect(evaluateString("[format('{{{0}}}-''q''', parameters('n'))]", scope)).toBe("{x}-'q'");
    expect(evaluateString("[resourceId('Microsoft.Web/sites/config', 'app', 'web')]", scope)).toBe(
      `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Web/sites/app/config/web`,
    );
    expect(evaluateString("[resourceGroup().location]", scope)).toBe("westeurope");
    expect(() => evaluateString("[uniqueString('a')]", scope)).toThrow(TemplateExpressionError);
    expect(() => evaluateString("[uniqueString('a')]", scope)).toThrow(
      /'uniquestring' is not known/,
    );
    expect(() => evaluateString("[format('a']", scope)).toThrow(/is not valid: expected '\)'/);
  });

  it("when a secure output is declared, then it is answered without value", () => {
    const t = parseTemplate({
      parameters: {},
      outputs: { s: { type: "securestring", value: "x" } },
    });
    expect(evaluateOutputs(t, {}, ctx)).toEqual({ s: { type: "SecureString" } });
  });
});

// ----- over HTTP --------------------------------------------------------------------------------

const credential: TokenCredential = {
  getToken: () => Promise.resolve({ token: "sim", expiresOnTimestamp: Date.now() + 3600e3 }),
};

let sim: ArmSimulator | undefined;
let services: Services | undefined;
afterEach(async () => {
  await services?.close();
  await sim?.close();
  sim = undefined;
  services = undefined;
});

async function startWithApp(): Promise<{ sim: ArmSimulator; services: Services }> {
  sim = await startArmSimulator({ subscriptionId: SUB, deploymentDelayMs: 0 });
  const config = loadConfig({
    ...validEnv(),
    AZURE_SUBSCRIPTION_ID: SUB,
    GRAFANA_RESOURCE_GROUP: RG,
  });
  services = createServices(config, { credential, armTransport: armSimulatorTransport(sim.url) });
  return { sim, services };
}

function rawPut(s: ArmSimulator, name: string, parameters: Record<string, unknown>) {
  return fetch(
    `${s.url}/subscriptions/${SUB}/resourcegroups/${RG}/providers/Microsoft.Resources/deployments/${name}?api-version=2024-03-01`,
    {
      method: "PUT",
      headers: { authorization: "Bearer sim", "content-type": "application/json" },
      body: JSON.stringify({
        properties: {
          mode: "Incremental",
          templateLink: { id: "/subscriptions/x/templateSpecs/grafana-host/versions/1.0.0" },
          parameters,
        },
      }),
    },
  );
}

describe("ARM simulator deployments against the compiled template", () => {
  it("when PUTs do not match the template, then each is answered 400 InvalidTemplate and nothing is deployed", async () => {
    const { sim: s } = await startWithApp();
    const ref = randomRef();
    const cases: Array<Record<string, unknown>> = [
      { ...required(ref), extra: { value: 1 } },
      { ...required(ref), subnetId: undefined },
      { ...required(ref), dataDiskSizeGB: { value: "32" } },
      { ...required(ref), diskType: { value: "Premium_ZRS" } },
      { ...required(ref), projectRef: { value: ref.slice(1) } },
    ];
    for (const params of cases) {
      const res = await rawPut(
        s,
        `grafana-${ref}`,
        JSON.parse(JSON.stringify(params)) as Record<string, unknown>,
      );
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("InvalidTemplate");
      expect(body.error.message).toMatch(/^Deployment template validation failed: /);
    }
    expect(s.deployments()).toEqual([]);
    expect(s.resources()).toEqual([]);
  });

  it("when the app PUTs a deployment as in provisioning, then it passes and answers the declared outputs", async () => {
    const { sim: s, services: svc } = await startWithApp();
    const ref = randomRef();
    const c = svc.config;
    const cloudInit = renderCloudInit({
      gatewayPrivateIp: "10.40.0.4",
      ref,
      domain: c.GRAFANA_DOMAIN,
      serviceRoleKey: "sb_secret_test",
      grafanaAdminPassword: "pw-for-the-test",
      alertEmails: [],
    });
    const accepted = await putDeployment(svc, {
      ref,
      org: "org-test",
      operationId: "op-1",
      templateSpecId: c.GRAFANA_TEMPLATE_SPEC_ID,
      vmSize: c.GRAFANA_VM_SIZE,
      cloudInit,
      subnetId: c.GRAFANA_SUBNET_ID,
      adminSshPublicKey: c.GRAFANA_ADMIN_SSH_PUBLIC_KEY,
    });
    expect(accepted).toBe("accepted");
    const [put] = s.requests().filter((r) => r.method === "PUT");
    expect(put?.status).toBe(201);

    const status = await getDeployment(svc, ref);
    expect(status?.provisioningState).toBe("Succeeded");
    const [d] = s.deployments();
    const nic = s.resources().find((r) => r.name === `${vmNameFor(ref)}-nic`);
    const ip = (
      nic?.properties.ipConfigurations as Array<{ properties: { privateIPAddress: string } }>
    )[0]?.properties.privateIPAddress;
    expect(Object.keys(d?.outputs ?? {})).toEqual(Object.keys(grafanaHostTemplate().outputs));
    expect(d?.outputs).toEqual({
      privateIpAddress: { type: "String", value: ip },
      vmName: { type: "String", value: vmNameFor(ref) },
    });
    expect(status?.outputs).toEqual({ privateIpAddress: ip, vmName: vmNameFor(ref) });
  });

  it("when the app PUTs a ref the template refuses, then the app gets ARM's 400 as an ArmRequestError", async () => {
    const { services: svc } = await startWithApp();
    const c = svc.config;
    const err = await putDeployment(svc, {
      ref: "short",
      org: "org-test",
      operationId: "op-2",
      templateSpecId: c.GRAFANA_TEMPLATE_SPEC_ID,
      vmSize: c.GRAFANA_VM_SIZE,
      cloudInit: "#cloud-config\n",
      subnetId: c.GRAFANA_SUBNET_ID,
      adminSshPublicKey: c.GRAFANA_ADMIN_SSH_PUBLIC_KEY,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArmRequestError);
    expect(err).toMatchObject({ statusCode: 400, code: "InvalidTemplate" });
  });
});
