import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";

import { pruneDepartedRecipients, requestConfigurePush } from "../../../lib/alerts/apply.js";
import { decodeAlertingPushScript } from "../../../lib/grafana-host/alerting-push.js";
import { getInstance, saveInstance } from "../../../lib/instances/store.js";
import { notifyAddress, notifyUser } from "../../../lib/notifications/index.js";
import { parseAlerting, prometheusRulesFromAlerting, ruleByUid } from "../../helpers/alerting.js";
import { promtoolCheckRules, promtoolTestRules } from "../../helpers/system-tools.js";
import { startAlertsEnv, type AlertsEnv, type OrgEnv } from "./harness.js";

let env: AlertsEnv;
let dir: string;

beforeAll(async () => {
  env = await startAlertsEnv();
  dir = mkdtempSync(join(tmpdir(), "supafana-alerts-it-"));
}, 120_000);
afterAll(async () => {
  await env.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Alerting push scripts the ARM simulator ran on this project's VM, oldest first. */
function pushesTo(ref: string): string[] {
  return (env.platform.arm?.runCommands() ?? [])
    .filter((r) => r.vmName === `grafana-${ref}`)
    .map((r) => decodeAlertingPushScript(r.script)?.document)
    .filter((d): d is string => d !== undefined);
}

const patch = (o: OrgEnv, ref: string, body: unknown) =>
  o.client.request("PATCH", `/api/projects/${ref}/grafana/alerts`, { body });

interface AlertsBody {
  alerts: Array<{ id: string; enabled: boolean; params: Array<{ name: string; value: number }> }>;
  configVersion: { desired: number; applied: number | null };
  lastConfigError: string | null;
  canEdit: boolean;
}

describe("alert settings reach the running host", () => {
  let o: OrgEnv;
  let ref: string;

  beforeAll(async () => {
    o = await env.newOrg(3);
    ref = o.refs[0] ?? "";
    await o.provision(ref);
    expect((await getInstance(env.platform.services, o.slug, ref))?.state).toBe("Running");
  }, 60_000);

  it("toggling an alert and changing a threshold makes one run command with exactly the new rules (promtool)", async () => {
    // Reaching Running cost no push: the host booted with the desired alerting.
    const before = pushesTo(ref).length;
    expect(before).toBe(0);
    const res = await patch(o, ref, {
      alerts: {
        "high-cpu": { params: { threshold: 70, for: 2 } },
        "disk-full": { enabled: false },
      },
    });
    expect(res.status, res.text).toBe(202);
    const body = res.body as AlertsBody;
    // The host booted with version 0 (what cloud-init carried), recorded once it was Running.
    expect(body.configVersion).toEqual({ desired: 1, applied: 0 });
    expect(body.canEdit).toBe(true);
    // Scheduled a couple of seconds out, on the project's session.
    const sent = o.driver.configureSent().at(-1);
    expect(sent?.sessionId).toBe(ref);
    expect(sent?.delayMs).toBeGreaterThanOrEqual(1500);

    await o.driver.drain();
    const pushes = pushesTo(ref).slice(before);
    expect(pushes).toHaveLength(1);
    const document = pushes[0] ?? "";
    const doc = parseAlerting(document);
    expect(ruleByUid(doc, "supafana-disk-full").isPaused).toBe(true);
    expect(ruleByUid(doc, "supafana-cpu-busy").for).toBe("2m");
    // What the sandbox host now serves is that document.
    expect(env.platform.grafanaHosts?.provisioning(ref)?.document).toBe(document);

    // promtool judges exactly what was pushed: 5 active rules, and the new threshold is live.
    const rulesFile = join(dir, `${ref}-rules.yml`);
    writeFileSync(rulesFile, prometheusRulesFromAlerting(document));
    const check = promtoolCheckRules(rulesFile);
    expect(check.output).toContain("SUCCESS: 5 rules found");
    expect(check.ok).toBe(true);
    const sel = `supabase_project_ref="${ref}"`;
    const cpuAt = (busyShare: number) => ({
      series: `node_cpu_seconds_total{${sel},cpu="0",mode="idle"}`,
      values: `0+${60 * (1 - busyShare)}x40`,
    });
    const tests = {
      rule_files: [rulesFile],
      evaluation_interval: "1m",
      tests: [
        {
          name: "75% busy fires at the new 70% threshold (it would not at 85%)",
          interval: "1m",
          input_series: [cpuAt(0.75)],
          alert_rule_test: [
            {
              eval_time: "10m",
              alertname: "supafana-cpu-busy",
              exp_alerts: [
                {
                  exp_labels: { severity: "warning" },
                  exp_annotations: {
                    summary: `Database CPU of ${ref} has been above 70% for 2 minutes`,
                    description: "CPU busy is 75% (all cores).",
                  },
                },
              ],
            },
          ],
        },
        {
          name: "65% busy stays quiet",
          interval: "1m",
          input_series: [cpuAt(0.65)],
          alert_rule_test: [{ eval_time: "10m", alertname: "supafana-cpu-busy", exp_alerts: [] }],
        },
        {
          name: "a full disk no longer alerts (disabled)",
          interval: "1m",
          input_series: [
            {
              series: `node_filesystem_avail_bytes{${sel},mountpoint="/data",fstype="ext4"}`,
              values: "1+0x40",
            },
            {
              series: `node_filesystem_size_bytes{${sel},mountpoint="/data",fstype="ext4"}`,
              values: "100+0x40",
            },
          ],
          alert_rule_test: [{ eval_time: "30m", alertname: "supafana-disk-full", exp_alerts: [] }],
        },
      ],
    };
    const testFile = join(dir, `${ref}-rules.test.yml`);
    writeFileSync(testFile, stringify(tests));
    const result = promtoolTestRules(testFile);
    expect(result.output).toContain("SUCCESS");
    expect(result.ok).toBe(true);

    const after = await o.client.get(`/api/projects/${ref}/grafana/alerts`);
    expect((after.body as AlertsBody).configVersion).toEqual({ desired: 1, applied: 1 });
    const cpu = (after.body as AlertsBody).alerts.find((a) => a.id === "high-cpu");
    expect(cpu?.params.find((p) => p.name === "threshold")?.value).toBe(70);
    const grafana = await o.client.get(`/api/projects/${ref}/grafana`);
    expect(grafana.body).toMatchObject({
      state: "Running",
      configVersion: { desired: 1, applied: 1 },
      lastConfigError: null,
    });
  });

  it("two quick changes make one push, of the latest state", async () => {
    const before = pushesTo(ref).length;
    expect(
      (await patch(o, ref, { alerts: { "low-memory": { params: { threshold: 20 } } } })).status,
    ).toBe(202);
    expect(
      (await patch(o, ref, { alerts: { "low-memory": { params: { threshold: 15 } } } })).status,
    ).toBe(202);
    await o.driver.drain();
    const pushes = pushesTo(ref).slice(before);
    expect(pushes).toHaveLength(1);
    expect(
      JSON.stringify(ruleByUid(parseAlerting(pushes[0] ?? ""), "supafana-memory-low").data),
    ).toContain('"params":[15]');
    const after = await o.client.get(`/api/projects/${ref}/grafana/alerts`);
    expect((after.body as AlertsBody).configVersion).toEqual({ desired: 3, applied: 3 });
  });

  it("a change that changes nothing pushes nothing", async () => {
    const before = pushesTo(ref).length;
    const res = await patch(o, ref, { alerts: { "low-memory": { params: { threshold: 15 } } } });
    expect((res.body as AlertsBody).configVersion.desired).toBe(3);
    await o.driver.drain();
    expect(pushesTo(ref).length).toBe(before);
  });

  it("refuses unknown alerts, unknown parameters and values out of range with 400 naming them", async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ alerts: { nope: { enabled: true } } }, /unknown alert "nope"/],
      [{ alerts: { "high-cpu": { params: { speed: 1 } } } }, /no parameter "speed"/],
      [{ alerts: { "high-cpu": { params: { threshold: 1 } } } }, /between 50 and 99/],
    ];
    for (const [body, message] of cases) {
      const res = await patch(o, ref, body);
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ error: { code: "bad_request" } });
      expect((res.body as { error: { message: string } }).error.message).toMatch(message);
    }
    expect((await patch(o, ref, { alerts: "x" })).status).toBe(400);
  });

  it("a failed push leaves the old provisioning and the instance Running with lastConfigError; the retry converges", async () => {
    const hosts = env.platform.grafanaHosts;
    if (!hosts) throw new Error("no sandbox hosts");
    const serving = hosts.provisioning(ref)?.document;
    hosts.failNextPushes(1, ref);
    expect(
      (await patch(o, ref, { alerts: { "postgres-down": { params: { for: 9 } } } })).status,
    ).toBe(202);
    // Deliver until the failed push has been recorded (the retry is then pending).
    for (let i = 0; i < 10 && o.driver.pending.length > 0; i++) {
      await o.driver.step();
      const g = await o.client.get(`/api/projects/${ref}/grafana`);
      if ((g.body as { lastConfigError: string | null }).lastConfigError) break;
    }
    const failed = await o.client.get(`/api/projects/${ref}/grafana`);
    expect(failed.body).toMatchObject({
      state: "Running",
      configVersion: { desired: 4, applied: 3 },
    });
    expect((failed.body as { lastConfigError: string }).lastConfigError).toMatch(/refused/);
    expect(hosts.provisioning(ref)?.document).toBe(serving);
    const retry = o.driver.pending.find((d) => (d.body as { kind?: string }).kind === "configure");
    expect(retry?.delayMs).toBeGreaterThan(0);

    await o.driver.drain();
    const healed = await o.client.get(`/api/projects/${ref}/grafana`);
    expect(healed.body).toMatchObject({
      state: "Running",
      configVersion: { desired: 4, applied: 4 },
      lastConfigError: null,
    });
    expect(
      ruleByUid(parseAlerting(hosts.provisioning(ref)?.document ?? ""), "supafana-postgres-down")
        .for,
    ).toBe("9m");
  });

  it("a host re-created by a later operation is given the desired alerting again; an up-to-date one is not", async () => {
    const services = o.driver.services;
    const before = pushesTo(ref).length;
    expect(await requestConfigurePush(services, o.slug, ref)).toBe(false);
    expect(await requestConfigurePush(services, o.slug, ref, { hostReplaced: true })).toBe(true);
    await o.driver.drain();
    expect(pushesTo(ref).length).toBe(before); // same host (same operation): nothing to push

    // A heal or upgrade: a new operation deployed a new VM.
    const i = await getInstance(services, o.slug, ref);
    if (!i) throw new Error("no instance");
    await saveInstance(services, { ...i, operationId: randomUUID() });
    expect(await requestConfigurePush(services, o.slug, ref, { hostReplaced: true })).toBe(true);
    await o.driver.drain();
    expect(pushesTo(ref).length).toBe(before + 1);
    const g = await o.client.get(`/api/projects/${ref}/grafana`);
    expect(g.body).toMatchObject({
      configVersion: { desired: 4, applied: 4 },
      lastConfigError: null,
    });
  });

  it("answers 404 for a project without an instance", async () => {
    const res = await o.client.get(`/api/projects/${o.refs[2] ?? ""}/grafana/alerts`);
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ error: { code: "not_found" } });
  });
});

describe("a change while the instance is deploying", () => {
  it("is applied once the instance is Running", async () => {
    const o = await env.newOrg(1);
    const ref = o.refs[0] ?? "";
    expect((await o.client.put(`/api/projects/${ref}/grafana`)).status).toBe(202);
    // Run the lifecycle until the deployment is under way.
    for (let i = 0; i < 20; i++) {
      const state = (await getInstance(env.platform.services, o.slug, ref))?.state;
      if (state === "Deploying") break;
      await o.driver.step();
    }
    expect((await getInstance(env.platform.services, o.slug, ref))?.state).toBe("Deploying");
    const res = await patch(o, ref, {
      alerts: { connections: { params: { maxConnections: 200 } } },
    });
    expect(res.status).toBe(202);
    await o.driver.drain();
    expect((await getInstance(env.platform.services, o.slug, ref))?.state).toBe("Running");
    const pushes = pushesTo(ref);
    expect(pushes).toHaveLength(1);
    expect(
      JSON.stringify(ruleByUid(parseAlerting(pushes[0] ?? ""), "supafana-connections").data),
    ).toContain("/ 200");
    const after = await o.client.get(`/api/projects/${ref}/grafana/alerts`);
    expect((after.body as AlertsBody).configVersion).toEqual({ desired: 1, applied: 1 });
  }, 60_000);
});

interface RecipientsBody {
  recipients: Array<{ userId: string; email: string }>;
  members: Array<{ userId: string; verified: boolean; recipient: boolean }>;
  canEditOthers: boolean;
  me: string;
  configVersion: { desired: number; applied: number | null };
}

const contactAddresses = (document: string | undefined): string[] => {
  const doc = parseAlerting(document ?? "");
  const addresses = doc.contactPoints?.[0]?.receivers[0]?.settings.addresses;
  return addresses ? addresses.split(";") : [];
};

describe("recipients", () => {
  let o: OrgEnv;
  let ref: string;

  beforeAll(async () => {
    o = await env.newOrg(1);
    ref = o.refs[0] ?? "";
    await o.provision(ref);
  }, 60_000);

  it("start with whoever requested the instance", async () => {
    const res = await o.client.get(`/api/projects/${ref}/grafana/recipients`);
    expect(res.status).toBe(200);
    const body = res.body as RecipientsBody;
    expect(body.recipients.map((r) => r.userId)).toEqual([o.userId]);
    expect(body.me).toBe(o.userId);
    expect(body.canEditOthers).toBe(true);
  });

  it("a Developer cannot change others (403) but can opt in and out themselves", async () => {
    const dev = await o.addMember("Developer");
    const devId = dev.member.user_id;
    const path = `/api/projects/${ref}/grafana/recipients`;
    const view = (await dev.client.get(path)).body as RecipientsBody;
    expect(view.canEditOthers).toBe(false);
    expect(view.members.find((m) => m.userId === devId)).toMatchObject({
      verified: true,
      recipient: false,
    });

    const removeOwner = await dev.client.put(path, { body: { userIds: [devId] } });
    expect(removeOwner.status).toBe(403);
    expect(removeOwner.body).toMatchObject({ error: { code: "forbidden" } });
    expect(
      (
        await dev.client.request("PATCH", `/api/projects/${ref}/grafana/alerts`, {
          body: { alerts: { "high-cpu": { enabled: false } } },
        })
      ).status,
    ).toBe(403);
    expect(
      ((await dev.client.get(`/api/projects/${ref}/grafana/alerts`)).body as AlertsBody).canEdit,
    ).toBe(false);

    const optIn = await dev.client.put(path, { body: { userIds: [o.userId, devId] } });
    expect(optIn.status, optIn.text).toBe(202);
    await o.driver.drain();
    const hosts = env.platform.grafanaHosts;
    expect(contactAddresses(hosts?.provisioning(ref)?.document).sort()).toEqual(
      [o.email, dev.member.email].sort(),
    );

    const optOut = await dev.client.put(path, { body: { userIds: [o.userId] } });
    expect(optOut.status).toBe(202);
    await o.driver.drain();
    expect(contactAddresses(hosts?.provisioning(ref)?.document)).toEqual([o.email]);
  });

  it("only verified members can be recipients (400 otherwise)", async () => {
    const path = `/api/projects/${ref}/grafana/recipients`;
    const stranger = await o.client.put(path, { body: { userIds: [o.userId, "not-a-member"] } });
    expect(stranger.status).toBe(400);
    expect(stranger.body).toMatchObject({ error: { code: "bad_request" } });
    // A member who never identified themselves.
    o.org.members.push({
      user_id: "unverified-member",
      user_name: "u",
      email: "u@members.example",
      role_name: "Developer",
      mfa_enabled: false,
    });
    env.clock.advance(61_000);
    const unverified = await o.client.put(path, {
      body: { userIds: [o.userId, "unverified-member"] },
    });
    expect(unverified.status).toBe(400);
    expect(
      (
        await o.client.put(path, {
          body: { userIds: Array.from({ length: 51 }, (_, i) => `u${i}`) },
        })
      ).status,
    ).toBe(400);
  });

  it("a member removed from the Supabase org stops receiving alerts", async () => {
    const path = `/api/projects/${ref}/grafana/recipients`;
    const a = await o.addMember("Developer");
    const b = await o.addMember("Administrator");
    const set = await o.client.put(path, {
      body: { userIds: [o.userId, a.member.user_id, b.member.user_id] },
    });
    expect(set.status, set.text).toBe(202);
    await o.driver.drain();
    const hosts = env.platform.grafanaHosts;
    expect(contactAddresses(hosts?.provisioning(ref)?.document)).toHaveLength(3);

    // Left the org: dropped at the next membership read, and the host follows.
    o.removeMember(a.member.user_id);
    const read = (await o.client.get(path)).body as RecipientsBody;
    expect(read.recipients.map((r) => r.userId).sort()).toEqual(
      [o.userId, b.member.user_id].sort(),
    );
    await o.driver.drain();
    expect(contactAddresses(hosts?.provisioning(ref)?.document).sort()).toEqual(
      [o.email, b.member.email].sort(),
    );

    // Left without anyone looking: the daily sweep drops them.
    o.removeMember(b.member.user_id);
    const ctx = o.client.context("reconciler");
    const swept = await pruneDepartedRecipients(o.driver.services, ctx);
    expect(swept.pruned).toBeGreaterThanOrEqual(1);
    await o.driver.drain();
    expect(contactAddresses(hosts?.provisioning(ref)?.document)).toEqual([o.email]);
  });
});

describe("notification preferences", () => {
  it("a user who opted out of 'instance ready' gets no such e-mail; the verification code always goes", async () => {
    const o = await env.newOrg(1);
    const loops = env.platform.loops;
    if (!loops) throw new Error("no Loops simulator");
    const initial = await o.client.get("/api/me/notifications");
    expect(initial.body).toEqual({
      preferences: {
        instanceReady: true,
        trialEnding: true,
        paymentFailed: true,
        instanceDeleted: true,
      },
      always: ["verificationCode", "instanceFailed"],
    });
    const res = await o.client.request("PATCH", "/api/me/notifications", {
      body: { preferences: { instanceReady: false } },
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ preferences: { instanceReady: false, trialEnding: true } });
    expect(
      (
        await o.client.request("PATCH", "/api/me/notifications", {
          body: { preferences: { bogus: true } },
        })
      ).status,
    ).toBe(400);

    const mailsTo = () => loops.sent.filter((m) => m.email === o.email);
    const before = mailsTo().length;
    const services = env.platform.services;
    const key = `t-${o.slug}`;
    expect(
      await notifyUser(services, {
        org: o.slug,
        userId: o.userId,
        template: "instanceReady",
        data: { ref: "x" },
        idempotencyKey: `${key}-ready`,
      }),
    ).toBe("opted_out");
    expect(mailsTo().length).toBe(before);
    expect(
      await notifyUser(services, {
        org: o.slug,
        userId: o.userId,
        template: "instanceDeleted",
        data: { ref: "x" },
        idempotencyKey: `${key}-deleted`,
      }),
    ).toBe("sent");
    expect(
      await notifyUser(services, {
        org: o.slug,
        userId: o.userId,
        template: "verificationCode",
        data: { verificationCode: "123456" },
        idempotencyKey: `${key}-code`,
      }),
    ).toBe("sent");
    expect(mailsTo().length).toBe(before + 2);

    // The billing path (an address, not a user id): a member's address follows their choice.
    await o.client.request("PATCH", "/api/me/notifications", {
      body: { preferences: { paymentFailed: false } },
    });
    const billing = (email: string) =>
      notifyAddress(services, {
        org: o.slug,
        email,
        template: "paymentFailed",
        data: { org: o.slug },
        idempotencyKey: `${key}-pay-${email}`,
      });
    expect(await billing(o.email.toUpperCase())).toBe("opted_out");
    expect(await billing("billing@company.example")).toBe("sent");
    expect(loops.sent.filter((m) => m.email === "billing@company.example")).toHaveLength(1);
    expect(mailsTo().length).toBe(before + 2);
  });
});
