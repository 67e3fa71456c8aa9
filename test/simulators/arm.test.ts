import { ComputeManagementClient } from "@azure/arm-compute";
import { DnsManagementClient } from "@azure/arm-dns";
import { NetworkManagementClient } from "@azure/arm-network";
import { ResourceManagementClient } from "@azure/arm-resources";
import type { TokenCredential } from "@azure/core-auth";
import { createHttpPoller, type OperationResponse } from "@azure/core-lro";
import {
  createHttpHeaders,
  createPipelineRequest,
  isRestError,
  type PipelineResponse,
  type RestError,
} from "@azure/core-rest-pipeline";
import { afterEach, describe, expect, it } from "vitest";

import {
  armSimulatorHttpClient,
  startArmSimulator,
  type ArmSimOptions,
  type ArmSimulator,
} from "../../local/simulators/arm.js";

const SUB = "00000000-0000-4000-8000-000000000001";
const ARM = "https://management.azure.com";
const GRAFANA_RG = "rg-grafana";
const GW_RG = "rg-gateway";
const DNS_RG = "rg-dns";
const ZONE = "grafana.example.com";
const TEMPLATE_SPEC = `/subscriptions/${SUB}/resourceGroups/rg-templates/providers/Microsoft.Resources/templateSpecs/grafana/versions/1.0.0`;
const POLL = { updateIntervalInMs: 10 };
const SUBNET = `/subscriptions/${SUB}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/grafana`;

const credential: TokenCredential = {
  getToken: () => Promise.resolve({ token: "sim", expiresOnTimestamp: Date.now() + 3600e3 }),
};

let sim: ArmSimulator | undefined;
/** The simulator's clock: it stands still unless a test moves it on. */
let now = Date.parse("2026-03-01T12:00:00Z");
const tick = (ms: number) => {
  now += ms;
};
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

async function start(extra: Partial<ArmSimOptions> = {}): Promise<ArmSimulator> {
  sim = await startArmSimulator({
    subscriptionId: SUB,
    clock: () => now,
    deploymentDelayMs: 60,
    gatewayVm: { resourceGroup: GW_RG, name: "gateway" },
    dnsZone: { resourceGroup: DNS_RG, name: ZONE },
    ...extra,
  });
  return sim;
}

function clients(s: ArmSimulator, maxRetries?: number) {
  const options = {
    endpoint: ARM,
    httpClient: armSimulatorHttpClient(s.url),
    ...(maxRetries !== undefined ? { retryOptions: { maxRetries, retryDelayInMs: 1 } } : {}),
  };
  return {
    resources: new ResourceManagementClient(credential, SUB, options),
    compute: new ComputeManagementClient(credential, SUB, options),
    network: new NetworkManagementClient(credential, SUB, options),
    dns: new DnsManagementClient(credential, SUB, options),
  };
}

async function thrown(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected the call to throw");
}

async function restError(p: Promise<unknown>): Promise<RestError> {
  const err = await thrown(p);
  if (!isRestError(err)) throw new Error(`expected a RestError, got ${String(err)}`);
  return err;
}

/** Both SDK generations put ARM's error code on `err.code`; the body is checked when present. */
function errorCode(err: RestError): string | undefined {
  if (err.response?.bodyAsText) {
    const body = JSON.parse(err.response.bodyAsText) as { error?: { code?: string } };
    expect(body.error?.code).toBe(err.code);
  }
  return err.code;
}

// arm-resources 7 has no deployments operations any more (they moved to a separate package), so
// deployments go through the client's pipeline (same auth, retries and transport) and the SDK's
// generic long-running-operation poller.
type Rm = ResourceManagementClient;

async function send(rm: Rm, method: "GET" | "PUT" | "DELETE", url: string, body?: unknown) {
  const full = url.startsWith("https://") ? url : `${ARM}${url}`;
  return rm.sendRequest(
    createPipelineRequest({
      url: full.includes("api-version=")
        ? full
        : `${full}${full.includes("?") ? "&" : "?"}api-version=2025-04-01`,
      method,
      headers: createHttpHeaders({
        "content-type": "application/json",
        accept: "application/json",
      }),
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    }),
  );
}

function parsed(res: PipelineResponse): Record<string, unknown> {
  return res.bodyAsText ? (JSON.parse(res.bodyAsText) as Record<string, unknown>) : {};
}

function lroResponse(res: PipelineResponse): OperationResponse<Record<string, unknown>> {
  if (res.status >= 300) throw new Error(`HTTP ${res.status}: ${res.bodyAsText ?? ""}`);
  const body = parsed(res);
  return {
    flatResponse: body,
    rawResponse: {
      statusCode: res.status,
      headers: res.headers.toJSON(),
      body,
      request: { method: res.request.method, url: res.request.url },
    },
  };
}

const deploymentPath = (name: string, rg = GRAFANA_RG) =>
  `/subscriptions/${SUB}/resourcegroups/${rg}/providers/Microsoft.Resources/deployments/${name}`;

function deploymentBody(ref: string, extra: Record<string, unknown> = {}) {
  return {
    properties: {
      mode: "Incremental",
      templateLink: { id: TEMPLATE_SPEC },
      // Valid against bicep/compiled/grafana-host.json, which the simulator enforces.
      parameters: {
        projectRef: { value: ref },
        vmSize: { value: "Standard_B2s" },
        cloudInit: { value: "#cloud-config\nchpasswd: { list: 'admin:s3cret-admin-password' }\n" },
        subnetId: { value: SUBNET },
        adminSshPublicKey: { value: "ssh-ed25519 AAAAC3Nza test" },
        tags: { value: { "supafana-org": "org-1", "supafana-env": "test" } },
        ...extra,
      },
    },
  };
}

async function deploy(rm: Rm, name: string, body: unknown): Promise<Record<string, unknown>> {
  const poller = createHttpPoller<Record<string, unknown>, never>(
    {
      sendInitialRequest: async () =>
        lroResponse(await send(rm, "PUT", deploymentPath(name), body)),
      sendPollRequest: async (path) => {
        tick(10); // the simulated time between two polls
        return lroResponse(await send(rm, "GET", path));
      },
    },
    { intervalInMs: 10 },
  );
  return poller.pollUntilDone();
}

describe("ARM simulator", () => {
  it("when a request has no bearer token or hits no route, then it answers with ARM errors", async () => {
    const s = await start();
    const noAuth = await fetch(`${s.url}/subscriptions/${SUB}/resources?api-version=2025-04-01`);
    expect(noAuth.status).toBe(401);
    expect(((await noAuth.json()) as { error: { code: string } }).error.code).toBe(
      "AuthenticationFailed",
    );
    const auth = { authorization: "Bearer x" };
    const unknown = await fetch(`${s.url}/nowhere?api-version=1`, { headers: auth });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: { code: "NotFound" } });
    const noVersion = await fetch(`${s.url}/subscriptions/${SUB}/resources`, { headers: auth });
    expect(noVersion.status).toBe(400);
    const otherSub = await fetch(`${s.url}/subscriptions/other/resources?api-version=1`, {
      headers: auth,
    });
    expect(await otherSub.json()).toMatchObject({ error: { code: "SubscriptionNotFound" } });
  });

  it("when a Grafana deployment is PUT, then it runs to Succeeded and creates tagged resources with a private IP", async () => {
    const s = await start();
    const c = clients(s);
    const ref = "abcdefghijklmnopqrst";

    const first = await send(
      c.resources,
      "PUT",
      deploymentPath(`grafana-${ref}`),
      deploymentBody(ref),
    );
    expect(first.status).toBe(201);
    expect(parsed(first)).toMatchObject({ properties: { provisioningState: "Accepted" } });
    const asyncOp = first.headers.get("azure-asyncoperation") ?? "";
    expect(asyncOp).toMatch(
      new RegExp(
        `^${ARM}${deploymentPath(`grafana-${ref}`)}/operationStatuses/\\w+\\?api-version=`,
      ),
    );
    expect(first.headers.get("retry-after")).toBe("0");
    expect(parsed(await send(c.resources, "GET", asyncOp))).toEqual({ status: "Running" });
    tick(59);
    expect(parsed(await send(c.resources, "GET", asyncOp))).toEqual({ status: "Running" });
    tick(1);
    expect(parsed(await send(c.resources, "GET", asyncOp))).toEqual({ status: "Succeeded" });
    const done = parsed(await send(c.resources, "GET", deploymentPath(`grafana-${ref}`)));
    expect(done).toMatchObject({ properties: { provisioningState: "Succeeded" } });
    const outputs = (done.properties as { outputs: Record<string, { value: string }> }).outputs;
    expect(outputs.vmName?.value).toBe(`grafana-${ref}`);
    const ip = outputs.privateIpAddress?.value ?? "";
    expect(ip).toMatch(/^10\.20\.0\.\d+$/);

    const created = s.resources().filter((r) => r.resourceGroup === GRAFANA_RG);
    expect(created.map((r) => `${r.type}/${r.name}`).sort()).toEqual(
      [
        `Microsoft.Compute/disks/grafana-${ref}-data`,
        `Microsoft.Compute/disks/grafana-${ref}-osdisk`,
        `Microsoft.Compute/virtualMachines/grafana-${ref}`,
        `Microsoft.Network/networkInterfaces/grafana-${ref}-nic`,
      ].sort(),
    );
    for (const r of created) {
      expect(r.tags).toEqual({
        "supafana-ref": ref,
        "supafana-org": "org-1",
        "supafana-env": "test",
      });
    }

    const vm = await c.compute.virtualMachines.get(GRAFANA_RG, `grafana-${ref}`);
    expect(vm.provisioningState).toBe("Succeeded");
    const nicId = vm.networkProfile?.networkInterfaces?.[0]?.id ?? "";
    expect(nicId).toMatch(/\/networkInterfaces\/grafana-abcdefghijklmnopqrst-nic$/);
    expect(vm.storageProfile?.osDisk?.managedDisk?.id).toMatch(/\/disks\/grafana-\w+-osdisk$/);
    expect(vm.storageProfile?.dataDisks?.[0]?.managedDisk?.id).toMatch(
      /\/disks\/grafana-\w+-data$/,
    );

    const nic = await c.network.networkInterfaces.get(GRAFANA_RG, `grafana-${ref}-nic`);
    expect(nic.ipConfigurations?.[0]?.privateIPAddress).toBe(ip);
    expect(nic.virtualMachine?.id).toBe(vm.id);

    const [recorded] = s.deployments();
    expect(recorded).toMatchObject({
      name: `grafana-${ref}`,
      templateLinkId: TEMPLATE_SPEC,
      provisioningState: "Succeeded",
      puts: 1,
    });
    expect(recorded?.parameters).toMatchObject({ projectRef: { value: ref } });
  });

  it("when the same ref is deployed again, then resources are updated in place with the same IP", async () => {
    const s = await start({ deploymentDelayMs: 0 });
    const c = clients(s);
    const ref = "refrefrefrefrefrefre";
    const a = await deploy(c.resources, "grafana-a", deploymentBody(ref));
    const countBefore = s.resources().length;
    const b = await deploy(
      c.resources,
      "grafana-a",
      deploymentBody(ref, { tags: { value: { "supafana-org": "org-2" } } }),
    );
    expect(s.resources()).toHaveLength(countBefore);
    const ipOf = (d: Record<string, unknown>) =>
      (d.properties as { outputs: { privateIpAddress: { value: string } } }).outputs
        .privateIpAddress.value;
    expect(ipOf(b)).toBe(ipOf(a));
    const vm = s.resources().find((r) => r.name === `grafana-${ref}`);
    expect(vm?.tags).toEqual({ "supafana-ref": ref, "supafana-org": "org-2" });
    const history = s.deployments()[0]?.history ?? [];
    expect(history.map((h) => h.status)).toEqual([201, 200]);
    // Another deployment name for the same ref still lands on the same resources.
    await deploy(c.resources, "grafana-a-retry", deploymentBody(ref));
    expect(s.resources()).toHaveLength(countBefore);
  });

  it("when a deployment is PUT while it is still running, then ARM answers 409 DeploymentActive", async () => {
    const s = await start({ deploymentDelayMs: 5_000 });
    const c = clients(s);
    const body = {
      ...deploymentBody("busybusybusybusybusy"),
      tags: { "supafana-operation": "op-1" },
    };
    await send(c.resources, "PUT", deploymentPath("busy"), body);
    const again = await send(c.resources, "PUT", deploymentPath("busy"), body);
    expect(again.status).toBe(409);
    expect(parsed(again)).toMatchObject({ error: { code: "DeploymentActive" } });
    const [d] = s.deployments();
    expect(d?.puts).toBe(1);
    expect(d?.history.map((h) => h.status)).toEqual([201, 409]);
    // Still refused a moment before it ends; accepted (a redeploy) once it has.
    tick(4_999);
    expect((await send(c.resources, "PUT", deploymentPath("busy"), body)).status).toBe(409);
    tick(1);
    expect((await send(c.resources, "PUT", deploymentPath("busy"), body)).status).toBe(200);
    expect(s.deploymentPuts()).toEqual([
      { deployment: `${GRAFANA_RG}/busy`, operationId: "op-1", puts: 4 },
    ]);
  });

  it("when a deployment is made to fail, then the poller fails and the deployment carries the error", async () => {
    const s = await start();
    const c = clients(s);
    s.failNextDeployment("grafana-fail");
    const err = await thrown(
      deploy(c.resources, "grafana-failing", deploymentBody("failfailfailfailfail")),
    );
    expect(String(err)).toContain("DeploymentFailed");
    const got = parsed(await send(c.resources, "GET", deploymentPath("grafana-failing")));
    expect(got).toMatchObject({
      properties: {
        provisioningState: "Failed",
        error: { code: "DeploymentFailed", details: [{ code: "SkuNotAvailable" }] },
      },
    });
    expect(s.resources().filter((r) => r.resourceGroup === GRAFANA_RG)).toHaveLength(0);
    expect(s.deployments()[0]?.error?.details?.[0]?.code).toBe("SkuNotAvailable");
    // The next attempt succeeds.
    const ok = await deploy(c.resources, "grafana-failing", deploymentBody("failfailfailfailfail"));
    expect((ok.properties as { provisioningState: string }).provisioningState).toBe("Succeeded");
  });

  it("when a deployment is deleted, then it is gone but its resources stay", async () => {
    const s = await start({ deploymentDelayMs: 0 });
    const c = clients(s);
    await deploy(c.resources, "grafana-del", deploymentBody("deldeldeldeldeldelde"));
    const del = await send(c.resources, "DELETE", deploymentPath("grafana-del"));
    expect(del.status).toBe(202);
    const location = del.headers.get("location") ?? "";
    expect(location).toMatch(new RegExp(`^${ARM}/subscriptions/${SUB}/operationresults/`));
    expect((await send(c.resources, "GET", location)).status).toBe(204);
    expect((await send(c.resources, "GET", deploymentPath("grafana-del"))).status).toBe(404);
    expect(s.resources().filter((r) => r.resourceGroup === GRAFANA_RG)).toHaveLength(4);
  });

  it("when resources are listed by tag, then planted orphans and deployed resources are found", async () => {
    const s = await start({ deploymentDelayMs: 0 });
    const c = clients(s);
    await deploy(c.resources, "grafana-list", deploymentBody("listlistlistlistlist"));
    s.plantResource({
      resourceGroup: GRAFANA_RG,
      type: "Microsoft.Compute/virtualMachines",
      name: "grafana-orphan",
      tags: { "supafana-ref": "orphanorphanorphanor" },
    });
    s.plantResource({
      resourceGroup: "rg-other",
      type: "Microsoft.Storage/storageAccounts",
      name: "untagged",
    });

    const tagged = [];
    for await (const r of c.resources.resources.list({ filter: "tagName eq 'supafana-ref'" })) {
      tagged.push(r);
    }
    expect(tagged).toHaveLength(5);
    expect(tagged.every((r) => r.tags?.["supafana-ref"] !== undefined)).toBe(true);

    const orphan = [];
    for await (const r of c.resources.resources.list({
      filter: "tagName eq 'supafana-ref' and tagValue eq 'orphanorphanorphanor'",
    })) {
      orphan.push(r);
    }
    expect(orphan.map((r) => r.name)).toEqual(["grafana-orphan"]);

    const inGroup = [];
    for await (const r of c.resources.resources.listByResourceGroup(GRAFANA_RG, {
      filter: "resourceType eq 'Microsoft.Network/networkInterfaces'",
    })) {
      inGroup.push(r);
    }
    expect(inGroup.map((r) => r.name)).toEqual(["grafana-listlistlistlistlist-nic"]);

    const paged = [];
    for await (const r of c.resources.resources.list({ top: 2 })) paged.push(r);
    expect(paged).toHaveLength(s.resources().length);
  });

  it("when Grafana host resources are deleted, then the VM must go first", async () => {
    const s = await start({ deploymentDelayMs: 0 });
    const c = clients(s);
    const ref = "ordrordrordrordrordr";
    await deploy(c.resources, "grafana-ord", deploymentBody(ref));
    const vm = await c.compute.virtualMachines.get(GRAFANA_RG, `grafana-${ref}`);
    const nicId = vm.networkProfile?.networkInterfaces?.[0]?.id ?? "";
    const osDiskId = vm.storageProfile?.osDisk?.managedDisk?.id ?? "";
    const dataDiskId = vm.storageProfile?.dataDisks?.[0]?.managedDisk?.id ?? "";

    const nicFirst = await restError(
      c.resources.resources.beginDeleteByIdAndWait(nicId, "2024-05-01", POLL),
    );
    expect(nicFirst.statusCode).toBe(400);
    expect(errorCode(nicFirst)).toBe("NicInUse");
    const diskFirst = await restError(
      c.resources.resources.beginDeleteByIdAndWait(dataDiskId, "2024-03-02", POLL),
    );
    expect(diskFirst.statusCode).toBe(409);
    expect(errorCode(diskFirst)).toBe("OperationNotAllowed");

    s.resetRequests();
    await c.compute.virtualMachines.delete(GRAFANA_RG, `grafana-${ref}`, POLL).pollUntilDone();
    const vmDelete = s.requests().find((r) => r.method === "DELETE");
    expect(vmDelete?.status).toBe(202);
    for (const id of [nicId, osDiskId, dataDiskId]) {
      await c.resources.resources.beginDeleteByIdAndWait(id, "2024-05-01", POLL);
    }
    expect(s.resources().filter((r) => r.resourceGroup === GRAFANA_RG)).toHaveLength(0);
    // Deleting what is already gone is fine, as in ARM.
    await c.resources.resources.beginDeleteByIdAndWait(nicId, "2024-05-01", POLL);
    const missing = await restError(c.compute.virtualMachines.get(GRAFANA_RG, `grafana-${ref}`));
    expect(missing.statusCode).toBe(404);
    expect(errorCode(missing)).toBe("ResourceNotFound");
  });

  it("when deletes take time, then the resource shows Deleting and its NIC stays in use until it is gone", async () => {
    const s = await start({ deploymentDelayMs: 0, deleteDelayMs: 150 });
    const c = clients(s);
    const ref = "slowslowslowslowslow";
    await deploy(c.resources, "grafana-slow", deploymentBody(ref));
    const poller = c.compute.virtualMachines.delete(GRAFANA_RG, `grafana-${ref}`, POLL);
    await poller.submitted();
    const vm = s.resources().find((r) => r.name === `grafana-${ref}`);
    expect(vm?.properties.provisioningState).toBe("Deleting");
    const early = await restError(
      c.network.networkInterfaces.beginDeleteAndWait(GRAFANA_RG, `grafana-${ref}-nic`, POLL),
    );
    expect(errorCode(early)).toBe("NicInUse");
    // A DELETE repeated while the first is in progress joins it: the delete does not start over.
    tick(100);
    await c.compute.virtualMachines.delete(GRAFANA_RG, `grafana-${ref}`, POLL).submitted();
    tick(49);
    expect(s.resources().some((r) => r.name === `grafana-${ref}`)).toBe(true);
    tick(1);
    expect(s.resources().some((r) => r.name === `grafana-${ref}`)).toBe(false);
    await poller.pollUntilDone();
    const nicDelete = await c.network.networkInterfaces.beginDelete(
      GRAFANA_RG,
      `grafana-${ref}-nic`,
      POLL,
    );
    tick(150);
    await nicDelete.pollUntilDone();
    expect(s.resources().some((r) => r.name === `grafana-${ref}-nic`)).toBe(false);
  });

  it("when a resource of another type is deleted by id, then ARM's Location polling is used", async () => {
    const s = await start();
    const c = clients(s);
    const planted = s.plantResource({
      resourceGroup: GRAFANA_RG,
      type: "Microsoft.Insights/components",
      name: "ai-1",
    });
    s.resetRequests();
    await c.resources.resources.beginDeleteByIdAndWait(planted.id, "2020-02-02", POLL);
    const [del, poll] = s.requests();
    expect(del).toMatchObject({
      method: "DELETE",
      path: planted.id,
      rawPath: `/${planted.id}`,
      status: 202,
    });
    expect(poll).toMatchObject({ method: "GET", status: 204 });
    expect(poll?.path).toMatch(/^\/subscriptions\/[^/]+\/operationresults\//);
    expect(s.resources().some((r) => r.id === planted.id)).toBe(false);
  });

  it("when A records are upserted, read and deleted through the DNS SDK, then the zone reflects it", async () => {
    const s = await start();
    const c = clients(s);
    const created = await c.dns.recordSets.createOrUpdate(DNS_RG, ZONE, "abc", "A", {
      ttl: 300,
      aRecords: [{ ipv4Address: "20.1.2.3" }],
    });
    expect(created.fqdn).toBe(`abc.${ZONE}.`);
    expect(s.dnsRecords()).toEqual([
      expect.objectContaining({ zone: ZONE, name: "abc", type: "A", ttl: 300, ips: ["20.1.2.3"] }),
    ]);

    const conflict = await restError(
      c.dns.recordSets.createOrUpdate(
        DNS_RG,
        ZONE,
        "abc",
        "A",
        { ttl: 60, aRecords: [{ ipv4Address: "20.9.9.9" }] },
        { ifNoneMatch: "*" },
      ),
    );
    expect(conflict.statusCode).toBe(412);
    const stale = await restError(
      c.dns.recordSets.createOrUpdate(
        DNS_RG,
        ZONE,
        "abc",
        "A",
        { ttl: 60, aRecords: [{ ipv4Address: "20.9.9.9" }] },
        { ifMatch: "not-the-etag" },
      ),
    );
    expect(stale.statusCode).toBe(412);
    const updated = await c.dns.recordSets.createOrUpdate(
      DNS_RG,
      ZONE,
      "abc",
      "A",
      { ttl: 60, aRecords: [{ ipv4Address: "20.9.9.9" }] },
      { ifMatch: created.etag ?? "" },
    );
    expect(updated.aRecords).toEqual([{ ipv4Address: "20.9.9.9" }]);

    const got = await c.dns.recordSets.get(DNS_RG, ZONE, "abc", "A");
    expect(got.ttl).toBe(60);
    const listed = [];
    for await (const r of c.dns.recordSets.listByType(DNS_RG, ZONE, "A")) listed.push(r.name);
    expect(listed).toEqual(["abc"]);
    const all = [];
    for await (const r of c.dns.recordSets.listByDnsZone(DNS_RG, ZONE)) all.push(r.name);
    expect(all).toEqual(["abc"]);

    await c.dns.recordSets.delete(DNS_RG, ZONE, "abc", "A");
    await c.dns.recordSets.delete(DNS_RG, ZONE, "abc", "A");
    expect(s.dnsRecords()).toEqual([]);
    const gone = await restError(c.dns.recordSets.get(DNS_RG, ZONE, "abc", "A"));
    expect(gone.statusCode).toBe(404);

    const noZone = await restError(
      c.dns.recordSets.createOrUpdate(DNS_RG, "other.example.com", "abc", "A", {
        ttl: 60,
        aRecords: [{ ipv4Address: "20.1.2.3" }],
      }),
    );
    expect(noZone.statusCode).toBe(404);
    s.ensureDnsZone(DNS_RG, "other.example.com");
    await c.dns.recordSets.createOrUpdate(DNS_RG, "other.example.com", "@", "A", {
      ttl: 60,
      aRecords: [{ ipv4Address: "20.1.2.3" }],
    });
    expect(s.dnsRecords().map((r) => `${r.name}.${r.zone}`)).toEqual(["@.other.example.com"]);
  });

  it("when a run command is sent to the gateway, then the script runs and its output comes back as Azure shows it", async () => {
    const s = await start({
      runCommandExecutor: (vmName, script, parameters) =>
        Promise.resolve(
          script.join("\n").includes("fail")
            ? { exitCode: 3, stdout: "partial\n", stderr: "nginx: [emerg] bad config\n" }
            : {
                exitCode: 0,
                stdout: `ran on ${vmName} with ${parameters[0]?.value ?? "-"}\n`,
                stderr: "",
              },
        ),
    });
    const c = clients(s);
    const ok = await c.compute.virtualMachines.runCommand(
      GW_RG,
      "gateway",
      {
        commandId: "RunShellScript",
        script: ["set -e", "echo hello"],
        parameters: [{ name: "REF", value: "abc" }],
      },
      POLL,
    );
    expect(ok.value?.[0]).toMatchObject({
      code: "ProvisioningState/succeeded",
      level: "Info",
      message: "Enable succeeded: \n[stdout]\nran on gateway with abc\n\n[stderr]\n",
    });
    expect(s.runCommands()[0]).toMatchObject({
      vmName: "gateway",
      commandId: "RunShellScript",
      script: ["set -e", "echo hello"],
      parameters: [{ name: "REF", value: "abc" }],
      status: "Succeeded",
      result: { exitCode: 0 },
    });

    const failed = await c.compute.virtualMachines.runCommand(
      GW_RG,
      "gateway",
      { commandId: "RunShellScript", script: ["fail"] },
      POLL,
    );
    expect(failed.value?.[0]?.code).toBe("ProvisioningState/succeeded");
    expect(failed.value?.[0]?.message).toContain("[stderr]\nnginx: [emerg] bad config\n");

    const missing = await restError(
      c.compute.virtualMachines.runCommand(GW_RG, "nope", { commandId: "RunShellScript" }, POLL),
    );
    expect(missing.statusCode).toBe(404);
    expect(errorCode(missing)).toBe("ResourceNotFound");
  });

  it("when a run command is already running on the VM, then a second one is refused with 409", async () => {
    let release: () => void = () => undefined;
    const s = await start({
      runCommandExecutor: () =>
        new Promise((resolve) => {
          release = () => {
            resolve({ exitCode: 0, stdout: "", stderr: "" });
          };
        }),
    });
    const c = clients(s);
    const first = c.compute.virtualMachines.runCommand(
      GW_RG,
      "gateway",
      { commandId: "RunShellScript" },
      POLL,
    );
    await first.submitted();
    const second = await restError(
      c.compute.virtualMachines.runCommand(GW_RG, "gateway", { commandId: "RunShellScript" }, POLL),
    );
    expect(second.statusCode).toBe(409);
    release();
    await first.pollUntilDone();
    expect(s.runCommands().map((r) => r.status)).toEqual(["Succeeded"]);
  });

  it("when ARM throttles, then the 429 reaches the caller as a RestError with Retry-After", async () => {
    const s = await start();
    const noRetry = clients(s, 0);
    s.injectFault({
      status: 429,
      retryAfterSeconds: 7,
      method: "GET",
      pathIncludes: "/virtualMachines/",
    });
    const err = await restError(noRetry.compute.virtualMachines.get(GW_RG, "gateway"));
    expect(err.statusCode).toBe(429);
    expect(err.response?.headers.get("retry-after")).toBe("7");
    expect(errorCode(err)).toBe("TooManyRequests");

    // Same through a classic (core-client) SDK client.
    s.injectFault({ status: 429, retryAfterSeconds: 5, pathIncludes: "networkInterfaces" });
    const err2 = await restError(noRetry.network.networkInterfaces.get(GRAFANA_RG, "x"));
    expect(err2.statusCode).toBe(429);
    expect(err2.response?.headers.get("retry-after")).toBe("5");

    // With the default retry policy and Retry-After 0 the SDK retries and gets through.
    const withRetry = clients(s);
    s.resetRequests();
    s.injectFault({
      status: 429,
      count: 2,
      retryAfterSeconds: 0,
      pathIncludes: "/virtualMachines/",
    });
    const vm = await withRetry.compute.virtualMachines.get(GW_RG, "gateway");
    expect(vm.name).toBe("gateway");
    expect(s.requests().map((r) => r.status)).toEqual([429, 429, 200]);
  });

  it("when a 500 or a hang is injected, then the caller sees a server error or a dropped connection", async () => {
    const s = await start();
    const noRetry = clients(s, 0);
    s.injectFault({ status: 500 });
    const err = await restError(noRetry.compute.virtualMachines.get(GW_RG, "gateway"));
    expect(err.statusCode).toBe(500);

    s.injectFault({ status: "timeout", timeoutMs: 50, method: "GET" });
    const started = Date.now();
    const dropped = await restError(noRetry.compute.virtualMachines.get(GW_RG, "gateway"));
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    expect(dropped.statusCode).toBeUndefined();
    expect(dropped.code).toBe("ECONNRESET");
    expect(s.requests().at(-1)?.status).toBe(0);
    // Faults are used up: the next call works.
    expect((await noRetry.compute.virtualMachines.get(GW_RG, "gateway")).name).toBe("gateway");
  });

  it("when requests arrive, then they are recorded with their bodies and can be reset", async () => {
    const s = await start({ deploymentDelayMs: 0 });
    const c = clients(s);
    await deploy(c.resources, "grafana-rec", deploymentBody("recrecrecrecrecrecre"));
    const puts = s.requests().filter((r) => r.method === "PUT");
    expect(puts).toHaveLength(1);
    expect(puts[0]?.apiVersion).toBe("2025-04-01");
    expect(JSON.stringify(puts[0]?.body)).toContain("s3cret-admin-password");
    expect(s.requests().filter((r) => r.method === "GET").length).toBeGreaterThan(0);
    s.resetRequests();
    expect(s.requests()).toEqual([]);
  });

  it("when the template declares a parameter secure, then a deployment GET does not echo its value", async () => {
    const s = await start({ deploymentDelayMs: 0 });
    const c = clients(s);
    const done = await deploy(c.resources, "grafana-sec", deploymentBody("secsecsecsecsecsecse"));
    expect(JSON.stringify(done)).not.toContain("s3cret-admin-password");
    const params = (done.properties as { parameters: Record<string, unknown> }).parameters;
    expect(params.cloudInit).toEqual({ type: "SecureString" });
    // Every template parameter, defaults evaluated, with the template's type.
    expect(params).toMatchObject({
      projectRef: { type: "String", value: "secsecsecsecsecsecse" },
      vmName: { type: "String", value: "grafana-secsecsecsecsecsecse" },
      location: { type: "String", value: "eastus" },
      dataDiskSizeGB: { type: "Int", value: 16 },
      diskType: { type: "String", value: "StandardSSD_LRS" },
      tags: { type: "Object" },
    });
  });
});
