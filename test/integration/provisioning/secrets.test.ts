import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { decryptPassword } from "../../../lib/provisioning/grafana-admin.js";
import { redact } from "../../../lib/provisioning/log.js";
import { serviceKeyOf } from "../../helpers/org.js";
import { allTableRows, startProvisioningEnv, type ProvisioningEnv } from "./harness.js";

const SMTP_PASSWORD = "smtp-relay-password-9d1f6c2a7b";

let env: ProvisioningEnv;

beforeAll(async () => {
  env = await startProvisioningEnv({
    env: {
      SMTP_HOST: "smtp.example.com",
      SMTP_USER: "alerts",
      SMTP_PASSWORD,
      SMTP_FROM_ADDRESS: "alerts@example.com",
    },
  });
});
afterAll(async () => {
  await env.close();
});

/** A request body with the one place secrets may go (the @secure() cloudInit value) removed. */
function withoutSecureParameter(body: unknown): { text: string; cloudInit?: string } {
  if (body === undefined || body === null || typeof body !== "object")
    return { text: JSON.stringify(body ?? "") };
  const copy = structuredClone(body) as {
    properties?: { parameters?: { cloudInit?: { value?: string } } };
  };
  const cloudInit = copy.properties?.parameters?.cloudInit?.value;
  if (copy.properties?.parameters?.cloudInit) delete copy.properties.parameters.cloudInit;
  return { text: JSON.stringify(copy), ...(cloudInit !== undefined ? { cloudInit } : {}) };
}

describe("secrets", () => {
  it("when an instance is provisioned, its password rotated and it is deleted, then no secret is in logs, table rows, e-mails or ARM requests except the secure cloudInit", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    const serviceKey = serviceKeyOf(o.org, ref);
    env.arm.resetRequests();

    await o.provision(ref);
    const running = await o.instance(ref);
    // The host's own key (deleted with the instance; read while it exists).
    const hostKey =
      o.org.projects.find((p) => p.ref === ref)?.createdKeys?.find((k) => k.id === running?.keyId)
        ?.apiKey ?? "";
    expect(hostKey).toMatch(/^sb_secret_/);
    const firstPassword = await decryptPassword(
      env.services,
      o.slug,
      ref,
      running?.passwordSecret ?? "",
    );
    const rotated = (
      await o.client.post(`/api/ops/instances/${o.slug}/${ref}/grafana-password`, {
        headers: { "x-ops-actor": "on-call" },
      })
    ).body.password as string;
    expect(rotated).toBeTruthy();
    const rowsWhileRunning = await allTableRows(env.services);
    await o.client.delete(`/api/projects/${ref}/grafana`);
    await o.driver.drain();

    const secrets = { serviceKey, hostKey, firstPassword, rotated, smtp: SMTP_PASSWORD };
    const logs = JSON.stringify(o.client.logs);
    const rows = rowsWhileRunning + (await allTableRows(env.services));
    const mails = JSON.stringify(env.platform.loops?.sent ?? []);
    const deploymentPuts = env.arm
      .requests()
      .filter((r) => r.method === "PUT" && r.path.includes("/deployments/"));
    expect(deploymentPuts).toHaveLength(1);

    const armBodies: string[] = [];
    let cloudInit = "";
    for (const r of env.arm.requests()) {
      const { text, cloudInit: ci } = withoutSecureParameter(r.body);
      armBodies.push(text);
      if (ci) cloudInit = ci;
    }
    // The secure parameter is where the host's key, password and SMTP password travel (the
    // cloud-init writes secret files base64-encoded); the project's shared key goes nowhere.
    const b64 = (v: string) => Buffer.from(v, "utf8").toString("base64");
    expect(cloudInit).toContain(b64(hostKey));
    expect(cloudInit).not.toContain(b64(serviceKey));
    expect(cloudInit).toContain(b64(firstPassword));
    expect(cloudInit).toContain(b64(SMTP_PASSWORD));

    for (const [name, secret] of Object.entries(secrets)) {
      for (const form of [secret, b64(secret)]) {
        expect(logs.includes(form), `${name} in logs`).toBe(false);
        expect(rows.includes(form), `${name} in table rows`).toBe(false);
        expect(mails.includes(form), `${name} in e-mails`).toBe(false);
        expect(armBodies.join("\n").includes(form), `${name} in ARM requests`).toBe(false);
      }
    }
  });

  it("when a message mentions a secret, then it is redacted", () => {
    expect(redact("key sb_secret_abc123 leaked", ["sb_secret_abc123"])).toBe(
      "key [redacted] leaked",
    );
    expect(redact("short ab", ["ab"])).toBe("short ab");
  });
});
