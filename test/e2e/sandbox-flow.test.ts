/**
 * The whole product flow through the local host over HTTP, as a person would do it offline,
 * against the shipped bundle (`dist/`) loaded through the Functions worker contract:
 * connect the org (OAuth), identify yourself with the e-mailed code, provision a project's
 * Grafana and watch it reach Running, pay through the Stripe simulator's hosted checkout, and
 * delete the Grafana again.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { startLocalApp, type LocalApp } from "../../local/app-host.js";
import { LOCAL } from "../../local/defaults.js";
import { freePort } from "../../local/ports.js";
import type { Platform } from "../../local/platform.js";
import { startTestPlatform } from "../helpers/platform.js";

describe("sandbox flow through the local host", () => {
  let platform: Platform;
  let local: LocalApp;
  let base = "";
  const jar = new Map<string, string>();

  const call = async (method: string, url: string, body?: unknown): Promise<Response> => {
    const res = await fetch(url, {
      method,
      redirect: "manual",
      headers: {
        ...(url.startsWith(base) && jar.size
          ? { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join("; ") }
          : {}),
        ...(method === "GET" ? {} : { origin: base }),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (url.startsWith(base)) {
      for (const c of res.headers.getSetCookie()) {
        const [pair = ""] = c.split(";");
        const i = pair.indexOf("=");
        const value = pair.slice(i + 1);
        if (value === "" || /max-age=0/i.test(c)) jar.delete(pair.slice(0, i));
        else jar.set(pair.slice(0, i), value);
      }
    }
    return res;
  };
  const json = async (res: Response): Promise<any> => res.json(); // eslint-disable-line @typescript-eslint/no-explicit-any

  beforeAll(async () => {
    const port = await freePort();
    base = `http://localhost:${port}`;
    platform = await startTestPlatform({
      publicBaseUrl: base,
      deploymentDelayMs: 200,
      stripeWebhookUrl: `${base}/api/webhooks/stripe`,
      ownServiceBus: true,
    });
    local = await startLocalApp(platform, {
      port,
      adminKey: LOCAL.adminKey,
      functionKey: LOCAL.functionKey,
    });
  });
  afterAll(async () => {
    await local.close();
    await platform.close();
  });

  it("when a person connects, verifies, provisions, pays and deletes, then every step answers as the contract says", async () => {
    // Connect: our login -> Supabase authorize (approves at once in sandbox) -> our callback.
    let res = await call("GET", `${base}/api/auth/login?returnTo=/dashboard`);
    expect(res.status).toBe(302);
    res = await call("GET", res.headers.get("location")!);
    expect(res.status).toBe(302);
    res = await call("GET", res.headers.get("location")!);
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe(`${base}/dashboard`);
    const me = await json(await call("GET", `${base}/api/me`));
    expect(me.org.slug).toBe("demo-org");
    expect(me.user).toBeNull();

    // Provisioning needs a verified member.
    const ref = "qzdemoprodapiabcdefg";
    expect((await call("PUT", `${base}/api/projects/${ref}/grafana`)).status).toBe(403);

    // Self-identification with the e-mailed code.
    const members = await json(await call("GET", `${base}/api/org/members`));
    const ada = members.find((m: { name: string }) => m.name === "ada");
    expect((await call("POST", `${base}/api/me/verification`, { userId: ada.userId })).status).toBe(
      200,
    );
    const mail = platform.loops!.sent.at(-1)!;
    const code = String(mail.dataVariables.verificationCode);
    expect(code).toMatch(/^\d{6}$/);
    res = await call("POST", `${base}/api/me/verification/confirm`, { userId: ada.userId, code });
    expect(res.status).toBe(200);

    // Provision and poll until Running.
    res = await call("PUT", `${base}/api/projects/${ref}/grafana`);
    expect(res.status).toBe(202);
    expect((await json(res)).plan).toBe("trial");
    let instance: any; // eslint-disable-line @typescript-eslint/no-explicit-any
    // Polled until it settles; the bounds only end a stuck flow (a loaded machine is slow).
    const poll = { timeout: 60_000, interval: 250 };
    await expect
      .poll(async () => {
        instance = await json(await call("GET", `${base}/api/projects/${ref}/grafana`));
        return instance.state as string;
      }, poll)
      .toBeOneOf(["Running", "Failed"]);
    expect(instance.state, JSON.stringify(instance)).toBe("Running");
    expect(instance.url).toBe(`https://${ref}.${platform.config.GRAFANA_DOMAIN}`);
    const projects = await json(await call("GET", `${base}/api/projects`));
    expect(projects.projects.find((p: { ref: string }) => p.ref === ref).instance.state).toBe(
      "Running",
    );

    // Pay: checkout on the simulator's hosted page, whose webhooks reach our host signed.
    const checkout = await json(await call("POST", `${base}/api/billing/checkout`));
    res = await call("POST", `${checkout.url as string}/complete`);
    expect(res.status).toBe(303);
    let billing: any; // eslint-disable-line @typescript-eslint/no-explicit-any
    await expect
      .poll(async () => {
        billing = await json(await call("GET", `${base}/api/billing`));
        return billing.plan as string;
      }, poll)
      .toBe("subscribed");
    expect(billing.subscription.status).toBe("active");

    // Delete.
    expect((await call("DELETE", `${base}/api/projects/${ref}/grafana`)).status).toBe(202);
    await expect
      .poll(async () => {
        instance = await json(await call("GET", `${base}/api/projects/${ref}/grafana`));
        return instance.state as string;
      }, poll)
      .toBe("Deleted");
    expect(platform.arm!.resources().filter((r) => r.tags["supafana-ref"] === ref)).toEqual([]);

    // Logout ends the session server-side.
    expect((await call("POST", `${base}/api/auth/logout`)).status).toBeLessThan(400);
    expect((await call("GET", `${base}/api/me`)).status).toBe(401);
  }, 240_000);
});
