/**
 * The local platform's health probe of a Grafana host: it answers only when the simulated
 * gateway routes the host, the ARM simulator has its VM, and the VM is responsive.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  getDeployment,
  isVm,
  listTaggedResources,
  putDeployment,
  startDelete,
} from "../../lib/azure/arm.js";
import { renderGatewayConfig } from "../../lib/gateway/nginx.js";
import { renderGatewayPushScript } from "../../lib/gateway/push-script.js";
import { healthUrl, probe } from "../../lib/provisioning/grafana-admin.js";
import type { Platform } from "../../local/platform.js";
import { randomRef, startTestPlatform } from "../helpers/platform.js";

let platform: Platform;
beforeAll(async () => {
  platform = await startTestPlatform({ deploymentDelayMs: 0 });
});
afterAll(async () => {
  await platform.close();
});

async function route(refs: string[]): Promise<void> {
  const gateway = platform.gateway;
  if (!gateway) throw new Error("no sandbox gateway");
  const config = renderGatewayConfig(
    refs.map((ref, i) => ({ ref, privateIp: `10.20.0.${10 + i}` })),
    {
      domain: platform.config.GRAFANA_DOMAIN,
      certificatePath: "/etc/nginx/tls/wildcard.crt",
      certificateKeyPath: "/etc/nginx/tls/wildcard.key",
    },
  );
  const out = await gateway.executor(
    "gateway",
    renderGatewayPushScript(config, { targetPath: "/etc/nginx/nginx.conf" }),
    [],
  );
  expect(out.exitCode).toBe(0);
}

async function deploy(ref: string): Promise<void> {
  const c = platform.config;
  await putDeployment(platform.services, {
    ref,
    org: "org-health",
    operationId: `op-${ref}`,
    templateSpecId: c.GRAFANA_TEMPLATE_SPEC_ID,
    vmSize: c.GRAFANA_VM_SIZE,
    cloudInit: "#cloud-config\n",
    subnetId: c.GRAFANA_SUBNET_ID,
    adminSshPublicKey: c.GRAFANA_ADMIN_SSH_PUBLIC_KEY,
  });
  expect((await getDeployment(platform.services, ref))?.provisioningState).toBe("Succeeded");
}

describe("sandbox health probe of a Grafana host", () => {
  it("when the host is routed, has its VM and is responsive, then it answers, else not", async () => {
    const svc = platform.services;
    const arm = platform.arm;
    if (!arm) throw new Error("no ARM simulator");
    const [ref, unrouted, vmless] = [randomRef(), randomRef(), randomRef()];
    await deploy(ref);
    await deploy(unrouted);
    await route([ref, vmless]);
    const status = (r: string) => probe(svc, healthUrl(svc, r));

    expect(await status(ref)).toBe(200);
    expect(await status(unrouted)).toBe(404);
    expect(await status(vmless)).toBe(502);

    arm.setHostResponsive(ref, false);
    expect(await status(ref)).toBe(502);
    arm.setHostResponsive(ref, true);
    expect(await status(ref)).toBe(200);

    const vm = (await listTaggedResources(svc, ref)).find(isVm);
    if (!vm) throw new Error("no VM");
    await startDelete(svc, vm);
    expect(await status(ref)).toBe(502);
    await deploy(ref);
    expect(await status(ref)).toBe(200);
  });
});
