import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  ALERT_CATALOG,
  applyAlertPatch,
  defaultAlertSettings,
} from "../../../lib/grafana-host/alert-catalog.js";
import {
  alertingHash,
  alertingPushOutcome,
  decodeAlertingPushScript,
  renderAlertingPushScript,
} from "../../../lib/grafana-host/alerting-push.js";
import { renderAlertRules, renderCloudInit } from "../../../lib/grafana-host/index.js";
import { GrafanaHostInputError } from "../../../lib/grafana-host/types.js";
import { parseAlerting, ruleByUid, ruleExpression } from "../../helpers/alerting.js";
import { REF, fileContent, hostInput, parseCloudConfig } from "./helpers.js";

const smtp = hostInput().smtp;

describe("alert catalog", () => {
  it("has a stable id, a default inside its range and a step for every parameter", () => {
    const ids = ALERT_CATALOG.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const e of ALERT_CATALOG) {
      for (const p of e.params) {
        expect(p.default).toBeGreaterThanOrEqual(p.min);
        expect(p.default).toBeLessThanOrEqual(p.max);
      }
    }
  });

  it("applies a valid change and leaves the rest at the defaults", () => {
    const s = applyAlertPatch({
      "high-cpu": { enabled: false, params: { threshold: 70 } },
      connections: { params: { maxConnections: 200 } },
    });
    expect(s["high-cpu"]).toEqual({ enabled: false, params: { threshold: 70, for: 10 } });
    expect(s.connections?.params.maxConnections).toBe(200);
    expect(s["disk-full"]).toEqual(defaultAlertSettings()["disk-full"]);
  });

  it.each([
    [{ "no-such": { enabled: true } }, /unknown alert "no-such"/],
    [{ "high-cpu": { params: { bogus: 1 } } }, /"high-cpu" has no parameter "bogus"/],
    [{ "high-cpu": { params: { threshold: 100 } } }, /"threshold" must be between 50 and 99/],
    [{ "high-cpu": { params: { for: 0 } } }, /"for" must be between 1 and 60/],
    [{ "high-cpu": { params: { threshold: 70.5 } } }, /whole number/],
  ])("refuses %j naming what is wrong", (patch, message) => {
    expect(() => applyAlertPatch(patch)).toThrow(GrafanaHostInputError);
    expect(() => applyAlertPatch(patch)).toThrow(message);
  });
});

describe("managed alerting document", () => {
  const settings = applyAlertPatch({
    "high-cpu": { params: { threshold: 70, for: 3 } },
    "disk-full": { enabled: false },
  });
  const doc = parseAlerting(
    renderAlertRules({ ref: REF, alertEmails: ["b@example.com"], smtp, alerts: settings }),
  );

  it("carries the thresholds and durations of the settings", () => {
    const cpu = ruleByUid(doc, "supafana-cpu-busy");
    expect(ruleExpression(cpu)).toMatch(/\) > 70$/);
    expect(cpu.for).toBe("3m");
    expect(cpu.isPaused).toBe(false);
  });

  it("keeps a disabled alert provisioned but paused (a dropped rule would linger in Grafana)", () => {
    expect(ruleByUid(doc, "supafana-disk-full").isPaused).toBe(true);
  });

  it("defines the condition of every rule (the original's deadlock rule had none)", () => {
    for (const rule of doc.groups.flatMap((g) => g.rules)) {
      expect(rule.data.map((d) => d.refId)).toContain(rule.condition);
      expect(() => ruleExpression(rule)).not.toThrow();
    }
  });

  it("fires on low available memory, not on low used memory", () => {
    const expr = ruleExpression(ruleByUid(doc, "supafana-memory-low"));
    expect(expr).toContain("node_memory_MemAvailable_bytes");
    expect(expr).toMatch(/\) < 10$/);
  });

  it("routes every alert to the recipients' addresses", () => {
    expect(doc.contactPoints?.[0]?.receivers[0]?.settings.addresses).toBe("b@example.com");
    expect(doc.policies?.[0]?.receiver).toBe("supafana-email");
  });

  it("with nobody to e-mail, takes back the policy and contact point an earlier push made", () => {
    const empty = parseAlerting(
      renderAlertRules({ ref: REF, alertEmails: [], smtp, alerts: settings }),
    );
    expect(empty.contactPoints).toBeUndefined();
    expect(empty.resetPolicies).toEqual([1]);
    expect(empty.deleteContactPoints).toEqual([{ orgId: 1, uid: "supafana-email" }]);
  });

  it("is what cloud-init writes at first boot for the same settings and recipients", () => {
    const cloud = parseCloudConfig(
      renderCloudInit(hostInput({ alertEmails: ["b@example.com"], alerts: settings })),
    );
    const written = fileContent(cloud, "/etc/supafana/grafana/provisioning/alerting/supafana.yaml");
    expect(written).toBe(
      renderAlertRules({ ref: REF, alertEmails: ["b@example.com"], smtp, alerts: settings }),
    );
  });

  it("refuses settings out of range at render time too", () => {
    expect(() =>
      renderCloudInit(hostInput({ alerts: { "high-cpu": { params: { threshold: 5 } } } })),
    ).toThrow(GrafanaHostInputError);
  });
});

/** A stand-in for Grafana's admin API on the VM: records reloads, answers with `status`. */
function startReloadServer(): Promise<{
  server: Server;
  url: string;
  reloads: Array<{ path: string; authorization: string | undefined }>;
  status: { code: number };
}> {
  const reloads: Array<{ path: string; authorization: string | undefined }> = [];
  const status = { code: 200 };
  const server = createServer((req, res) => {
    reloads.push({ path: `${req.method} ${req.url}`, authorization: req.headers.authorization });
    res.statusCode = status.code;
    res.end(status.code === 200 ? '{"message":"ok"}' : '{"message":"invalid alert rule"}');
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      resolve({ server, url: `http://127.0.0.1:${port}`, reloads, status });
    });
  });
}

describe("alerting push script (run for real with sh)", () => {
  let dir: string;
  let file: string;
  let passwordFile: string;
  let grafana: Awaited<ReturnType<typeof startReloadServer>>;
  const password = "p@ss'word\"$x";

  beforeAll(async () => {
    grafana = await startReloadServer();
  });
  afterAll(() => {
    grafana.server.close();
  });

  const setUp = () => {
    dir = mkdtempSync(join(tmpdir(), "supafana-alerting-"));
    file = join(dir, "alerting", "supafana.yaml");
    passwordFile = join(dir, "admin-password");
    writeFileSync(passwordFile, password);
  };
  /** Runs a script with sh, without blocking the stand-in server of this process. */
  const sh = (script: string[]) =>
    new Promise<{ output: string; stdout: string; status: number | null }>((resolve) => {
      const child = spawn("sh", ["-c", script.join("\n")]);
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
      child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
      child.on("close", (status) => resolve({ output: stdout + stderr, stdout, status }));
    });
  const run = async (document: string) => {
    const script = renderAlertingPushScript(document, {
      file,
      passwordFile,
      grafanaUrl: grafana.url,
    });
    return { script, ...(await sh(script)) };
  };

  it("writes the document, reloads Grafana's alerting on the VM with the admin password, and reports the hash", async () => {
    setUp();
    const document = renderAlertRules({ ref: REF, alertEmails: ["a@example.com"], smtp });
    grafana.status.code = 200;
    const before = grafana.reloads.length;
    const { output, status, script } = await run(document);
    expect(status, output).toBe(0);
    expect(alertingPushOutcome(output)).toEqual({ ok: true, sha256: alertingHash(document) });
    expect(readFileSync(file, "utf8")).toBe(document);
    const reload = grafana.reloads.slice(before);
    expect(reload).toHaveLength(1);
    expect(reload[0]?.path).toBe("POST /api/admin/provisioning/alerting/reload");
    expect(reload[0]?.authorization).toBe(
      `Basic ${Buffer.from(`admin:${password}`).toString("base64")}`,
    );
    expect(script.join("\n")).not.toContain(password);
    expect(decodeAlertingPushScript(script)?.document).toBe(document);

    // The same document again: nothing to do, no reload.
    const again = await run(document);
    expect(again.status).toBe(0);
    expect(again.output).toContain("unchanged");
    expect(grafana.reloads.length).toBe(before + 1);
    rmSync(dir, { recursive: true, force: true });
  });

  it("when Grafana refuses the reload, puts the previous document back and reports why", async () => {
    setUp();
    const old = renderAlertRules({ ref: REF, alertEmails: ["a@example.com"], smtp });
    grafana.status.code = 200;
    expect((await run(old)).status).toBe(0);
    grafana.status.code = 500;
    const next = renderAlertRules({ ref: REF, alertEmails: ["b@example.com"], smtp });
    const { output, status } = await run(next);
    expect(status).not.toBe(0);
    const outcome = alertingPushOutcome(output);
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) expect(outcome.message).toMatch(/HTTP 500.*invalid alert rule.*previous/);
    expect(readFileSync(file, "utf8")).toBe(old);
    expect(existsSync(`${file}.supafana-new`)).toBe(false);
    grafana.status.code = 200;
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses a damaged payload without touching the host", async () => {
    setUp();
    const document = renderAlertRules({ ref: REF, alertEmails: [], smtp });
    const script = renderAlertingPushScript(document, {
      file,
      passwordFile,
      grafanaUrl: grafana.url,
    }).map((l) => (l.startsWith("expected=") ? `expected=${"0".repeat(64)}` : l));
    const res = await sh(script);
    expect(res.status).not.toBe(0);
    expect(res.stdout).toContain("arrived damaged");
    expect(existsSync(file)).toBe(false);
    rmSync(dir, { recursive: true, force: true });
  });

  it("talks only to the VM's own Grafana", () => {
    expect(() =>
      renderAlertingPushScript("x", { grafanaUrl: "https://abc.grafana.example.com" }),
    ).toThrow(/VM's own Grafana/);
  });
});
