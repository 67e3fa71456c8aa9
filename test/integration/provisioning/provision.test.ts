import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { getProjectRef } from "../../../lib/instances/project-refs.js";
import { decryptPassword } from "../../../lib/provisioning/grafana-admin.js";
import { randomRef } from "../../helpers/platform.js";
import {
  deploymentsOf,
  dnsOf,
  resourcesOf,
  startProvisioningEnv,
  stepLogs,
  type ProvisioningEnv,
  expectNothingLeft,
} from "./harness.js";

let env: ProvisioningEnv;

beforeAll(async () => {
  env = await startProvisioningEnv();
});
afterAll(async () => {
  await env.close();
});

describe("provisioning through the routes and the consumers", () => {
  it("when a verified user PUTs a project's Grafana, then it goes Requested -> Running with one VM, one DNS record and a gateway route", async () => {
    const o = await env.newOrg();
    const ref = o.refs[0] ?? "";
    const put = await o.client.put(`/api/projects/${ref}/grafana`);
    expect(put.status).toBe(202);
    expect(put.body).toMatchObject({
      ref,
      state: "Requested",
      operation: "provision",
      plan: "trial",
      url: null,
    });

    await o.driver.drain();
    const get = await o.client.get(`/api/projects/${ref}/grafana`);
    expect(get.status).toBe(200);
    expect(get.body).toMatchObject({
      ref,
      state: "Running",
      url: `https://${ref}.${env.services.config.GRAFANA_DOMAIN}`,
      lastError: null,
    });
    expect(get.body.readyAt).not.toBeNull();

    const deployments = deploymentsOf(env.arm, ref);
    expect(deployments).toHaveLength(1);
    expect(deployments[0]?.puts).toBe(1);
    expect(deployments[0]?.templateLinkId).toBe(env.services.config.GRAFANA_TEMPLATE_SPEC_ID);
    expect(deployments[0]?.parameters).toMatchObject({
      projectRef: { value: ref },
      vmName: { value: `grafana-${ref}` },
      vmSize: { value: env.services.config.GRAFANA_VM_SIZE },
    });
    expect(
      resourcesOf(env.arm, ref)
        .map((r) => r.name)
        .sort(),
    ).toEqual(
      [
        `grafana-${ref}`,
        `grafana-${ref}-data`,
        `grafana-${ref}-nic`,
        `grafana-${ref}-osdisk`,
      ].sort(),
    );
    expect(dnsOf(env.arm, ref)).toEqual([
      expect.objectContaining({ name: ref, ips: [env.services.config.GATEWAY_PUBLIC_IP] }),
    ]);
    const instance = await o.instance(ref);
    expect(env.platform.gateway?.routes().get(`${ref}.${env.services.config.GRAFANA_DOMAIN}`)).toBe(
      `${instance?.privateIp ?? "?"}:3000`,
    );
    // The password is stored encrypted only, and decrypts for this row only.
    expect(instance?.passwordSecret).toMatch(/^ey/);
    const pw = await decryptPassword(env.services, o.slug, ref, instance?.passwordSecret ?? "");
    expect(pw.length).toBeGreaterThanOrEqual(24);
    // The trial is recorded for the project, and the ready e-mail went to the requester.
    expect((await getProjectRef(env.services, ref))?.trialEndsAt).toBeInstanceOf(Date);
    const mails = env.platform.loops?.to(o.email) ?? [];
    expect(mails.map((m) => m.transactionalId)).toEqual([
      env.services.config.LOOPS_TX_INSTANCE_READY,
    ]);
    // The operation's trail is in the logs, one entry per transition with the stable fields.
    const trail = stepLogs(o.client, instance?.operationId ?? "").map(
      (f) => `${f.step}:${f.outcome}`,
    );
    expect(trail).toEqual([
      "deploy:requested",
      "deploy:advanced",
      "await-deployment:advanced",
      "configure:advanced",
      "verify:waiting",
      "verify:running",
    ]);
  });

  it("when the same PUT comes again during and after the operation, then the same instance is returned and nothing is deployed twice", async () => {
    const o = await env.newOrg();
    const ref = o.refs[0] ?? "";
    const first = await o.client.put(`/api/projects/${ref}/grafana`);
    const second = await o.client.put(`/api/projects/${ref}/grafana`);
    expect(second.status).toBe(202);
    const a = await o.instance(ref);
    expect(second.body).toEqual(first.body);
    await o.driver.drain();
    const third = await o.client.put(`/api/projects/${ref}/grafana`);
    expect(third.status).toBe(202);
    expect(third.body.state).toBe("Running");
    const b = await o.instance(ref);
    expect(b?.operationId).toBe(a?.operationId);
    expect(o.driver.pending).toHaveLength(0);
    expect(deploymentsOf(env.arm, ref)[0]?.puts).toBe(1);
  });

  it("when a Running instance is deleted, then it goes Deleting -> Deleted and nothing of it is left in Azure", async () => {
    const o = await env.newOrg();
    const ref = o.refs[1] ?? "";
    expect((await o.provision(ref)).state).toBe("Running");
    const del = await o.client.delete(`/api/projects/${ref}/grafana`);
    expect(del.status).toBe(202);
    expect(del.body).toMatchObject({ state: "Deleting", operation: "deprovision" });
    await o.driver.drain();
    const after = await o.instance(ref);
    expect(after?.state).toBe("Deleted");
    expect(after?.passwordSecret).toBeUndefined();
    expectNothingLeft(env.arm, ref);
    expect(env.platform.gateway?.routes().has(`${ref}.${env.services.config.GRAFANA_DOMAIN}`)).toBe(
      false,
    );

    // Repeating the delete is safe and changes nothing.
    const again = await o.client.delete(`/api/projects/${ref}/grafana`);
    expect(again.status).toBe(202);
    expect(again.body.state).toBe("Deleted");
    expect(o.driver.pending).toHaveLength(0);

    // And the project can be provisioned again.
    expect((await o.provision(ref)).state).toBe("Running");
    expect(resourcesOf(env.arm, ref)).toHaveLength(4);
  });

  it("when the ref is malformed, then the answer is 400 before any I/O", async () => {
    const o = await env.newOrg();
    const before = env.arm.requests().length;
    for (const bad of [
      "ABCDEFGHIJKLMNOPQRST",
      "short",
      "abcdefghijklmnopqrst1",
      "abcdefghijklmnopqrs%2F",
    ]) {
      const res = await o.client.put(`/api/projects/${bad}/grafana`);
      expect(res.status, bad).toBe(400);
      expect(res.body.error.code).toBe("validation_failed");
    }
    expect(env.arm.requests().length).toBe(before);
  });

  it("when the project is not in the session's org, or its ref belongs to another org, then the PUT is refused", async () => {
    const a = await env.newOrg();
    const b = await env.newOrg();
    const notInOrg = await a.client.put(`/api/projects/${randomRef()}/grafana`);
    expect(notInOrg.status).toBe(404);
    const refB = b.refs[0] ?? "";
    await env.services.tables
      .client("projectRefs")
      .createEntity({ partitionKey: refB, rowKey: "", org: a.slug });
    const owned = await b.client.put(`/api/projects/${refB}/grafana`);
    expect(owned.status).toBe(409);
    expect(owned.body.error.code).toBe("project_owned_elsewhere");
  });

  it("when the session is missing or unverified, then PUT and DELETE are refused", async () => {
    const o = await env.newOrg();
    const ref = o.refs[0] ?? "";
    o.client.cookies.clear();
    expect((await o.client.put(`/api/projects/${ref}/grafana`)).status).toBe(401);
    expect((await o.client.get(`/api/projects/${ref}/grafana`)).status).toBe(401);
    expect((await o.client.delete(`/api/projects/${ref}/grafana`)).status).toBe(401);
  });

  it("when an operator rotates the password (break-glass), then the new one is returned once and stored encrypted", async () => {
    const o = await env.newOrg();
    const ref = o.refs[2] ?? "";
    const opsRoute = `/api/ops/instances/${o.slug}/${ref}/grafana-password`;
    const asOperator = { headers: { "x-ops-actor": "on-call" } };
    const notYet = await o.client.post(opsRoute, asOperator);
    expect(notYet.status).toBe(404);
    await o.provision(ref);
    // Members have no route that reveals it.
    expect((await o.client.post(`/api/projects/${ref}/grafana/password`)).status).toBe(404);
    const before = await o.instance(ref);
    const res = await o.client.post(opsRoute, asOperator);
    expect(res.status).toBe(200);
    const password = res.body.password as string;
    expect(password.length).toBeGreaterThanOrEqual(24);
    const after = await o.instance(ref);
    expect(after?.passwordSecret).not.toBe(before?.passwordSecret);
    expect(after?.pendingPasswordSecret).toBeUndefined();
    expect(await decryptPassword(env.services, o.slug, ref, after?.passwordSecret ?? "")).toBe(
      password,
    );
    expect(JSON.stringify((await o.client.get(`/api/projects/${ref}/grafana`)).body)).not.toContain(
      password,
    );
  });
});
