import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";

import {
  ALERT_FOLDER,
  EMAIL_CONTACT_POINT,
  alertExpression,
  defaultAlertDefinitions,
  renderAlertRules,
  renderPrometheusRules,
  type AlertDefinition,
} from "../../../lib/grafana-host/index.js";
import { promtoolCheckRules, promtoolTestRules } from "../../helpers/system-tools.js";
import { REF, hostInput } from "./helpers.js";

interface GrafanaRule {
  uid: string;
  title: string;
  condition: string;
  for: string;
  noDataState: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  data: {
    refId: string;
    datasourceUid: string;
    model: {
      expr?: string;
      type?: string;
      expression?: string;
      conditions?: { evaluator: { type: string; params: number[] } }[];
    };
  }[];
}

interface GrafanaAlerting {
  apiVersion: number;
  groups: { folder: string; interval: string; rules: GrafanaRule[] }[];
  contactPoints?: {
    name: string;
    receivers: { type: string; settings: { addresses: string } }[];
  }[];
  policies?: { receiver: string }[];
}

const defs = defaultAlertDefinitions({ ref: REF, maxDbConnections: 60 });
const byAlert = (name: string): AlertDefinition => {
  const def = defs.find((d) => d.alert === name);
  if (def === undefined) throw new Error(`no alert ${name}`);
  return def;
};

describe("alert expressions under the real promtool", () => {
  let dir: string;
  let rulesFile: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "supafana-rules-"));
    rulesFile = join(dir, "rules.yml");
    writeFileSync(rulesFile, renderPrometheusRules({ ref: REF, maxDbConnections: 60 }));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("promtool check rules accepts every expression and template", () => {
    const result = promtoolCheckRules(rulesFile);
    expect(result.output).toContain(`SUCCESS: ${defs.length} rules found`);
    expect(result.ok).toBe(true);
  });

  it("promtool rejects a broken expression (the check is real)", () => {
    const broken = join(dir, "broken.yml");
    writeFileSync(broken, renderPrometheusRules({ ref: REF }).replace("avg(rate(", "avg(rate(("));
    expect(promtoolCheckRules(broken).ok).toBe(false);
  });

  it("each alert fires on bad input and stays quiet on healthy input (promtool test rules)", () => {
    const sel = `supabase_project_ref="${REF}"`;
    const flat = (value: number) => `${value}+0x40`;
    const alert = (name: string, labels: Record<string, string>, description: string) => ({
      exp_labels: { severity: byAlert(name).severity, ...labels },
      exp_annotations: { summary: byAlert(name).summary, description },
    });
    const tests = [
      {
        name: "cpu busy 90%",
        series: [0, 1].map((cpu) => ({
          series: `node_cpu_seconds_total{${sel},cpu="${cpu}",mode="idle"}`,
          values: "0+6x40", // 6 s idle per minute = 10% idle
        })),
        alertname: "SupabaseCpuBusy",
        exp: [alert("SupabaseCpuBusy", {}, "CPU busy is 90% (all cores).")],
      },
      {
        name: "cpu busy 10%",
        series: [
          { series: `node_cpu_seconds_total{${sel},cpu="0",mode="idle"}`, values: "0+54x40" },
        ],
        alertname: "SupabaseCpuBusy",
        exp: [],
      },
      {
        name: "5% memory available",
        series: [
          { series: `node_memory_MemAvailable_bytes{${sel}}`, values: flat(5e8) },
          { series: `node_memory_MemTotal_bytes{${sel}}`, values: flat(1e10) },
        ],
        alertname: "SupabaseMemoryLow",
        exp: [alert("SupabaseMemoryLow", {}, "Available memory is 5% of total.")],
      },
      {
        // The case the original product got backwards: 95% free must not alert.
        name: "95% memory available",
        series: [
          { series: `node_memory_MemAvailable_bytes{${sel}}`, values: flat(9.5e9) },
          { series: `node_memory_MemTotal_bytes{${sel}}`, values: flat(1e10) },
        ],
        alertname: "SupabaseMemoryLow",
        exp: [],
      },
      {
        name: "/data 95% used, / 50% used, tmpfs full",
        series: [
          ["/data", "ext4", 5, 100],
          ["/", "ext4", 50, 100],
          ["/run", "tmpfs", 1, 100],
        ].flatMap(([mountpoint, fstype, avail, size]) => [
          {
            series: `node_filesystem_avail_bytes{${sel},mountpoint="${mountpoint}",fstype="${fstype}"}`,
            values: flat(Number(avail)),
          },
          {
            series: `node_filesystem_size_bytes{${sel},mountpoint="${mountpoint}",fstype="${fstype}"}`,
            values: flat(Number(size)),
          },
        ]),
        alertname: "SupabaseDiskFull",
        exp: [alert("SupabaseDiskFull", { mountpoint: "/data" }, "Filesystem /data is 95% used.")],
      },
      {
        name: "55 of 60 connections",
        series: [
          {
            series: `pg_stat_database_num_backends{${sel},server="localhost:5432"}`,
            values: flat(55),
          },
        ],
        alertname: "SupabaseConnectionsSaturated",
        exp: [alert("SupabaseConnectionsSaturated", {}, "Connections in use: 91.67% of 60.")],
      },
      {
        name: "30 of 60 connections",
        series: [
          {
            series: `pg_stat_database_num_backends{${sel},server="localhost:5432"}`,
            values: flat(30),
          },
        ],
        alertname: "SupabaseConnectionsSaturated",
        exp: [],
      },
      {
        name: "pg_up 0",
        series: [{ series: `pg_up{${sel},service_type="postgresql"}`, values: flat(0) }],
        alertname: "SupabasePostgresDown",
        exp: [alert("SupabasePostgresDown", {}, "pg_up has been 0 or missing for 5 minutes.")],
      },
      {
        name: "pg_up missing",
        series: [{ series: `node_load1{${sel}}`, values: flat(1) }],
        alertname: "SupabasePostgresDown",
        exp: [
          alert(
            "SupabasePostgresDown",
            { supabase_project_ref: REF },
            "pg_up has been 0 or missing for 5 minutes.",
          ),
        ],
      },
      {
        name: "pg_up 1",
        series: [{ series: `pg_up{${sel},service_type="postgresql"}`, values: flat(1) }],
        alertname: "SupabasePostgresDown",
        exp: [],
      },
      {
        name: "a deadlock every minute",
        series: [
          {
            series: `pg_stat_database_deadlocks_total{${sel},datname="postgres"}`,
            values: "0+1x40",
          },
        ],
        alertname: "SupabaseDeadlocks",
        exp: [alert("SupabaseDeadlocks", {}, "Deadlocks in the last 5 minutes: 5.")],
      },
      {
        name: "no deadlocks",
        series: [
          {
            series: `pg_stat_database_deadlocks_total{${sel},datname="postgres"}`,
            values: flat(3),
          },
        ],
        alertname: "SupabaseDeadlocks",
        exp: [],
      },
    ];
    const unitTests = {
      rule_files: [rulesFile],
      evaluation_interval: "1m",
      tests: tests.map((t) => ({
        name: t.name,
        interval: "1m",
        input_series: t.series,
        alert_rule_test: [{ eval_time: "30m", alertname: t.alertname, exp_alerts: t.exp }],
      })),
    };
    const file = join(dir, "rules.test.yml");
    writeFileSync(file, stringify(unitTests));
    const result = promtoolTestRules(file);
    expect(result.output).toContain("SUCCESS");
    expect(result.ok).toBe(true);
  });
});

describe("renderAlertRules (Grafana provisioning)", () => {
  const doc = parse(renderAlertRules(hostInput())) as GrafanaAlerting;
  const rules = doc.groups[0]?.rules ?? [];

  it("provisions one rule per alert, in the Supafana folder, evaluated every minute", () => {
    expect(doc.apiVersion).toBe(1);
    expect(doc.groups).toHaveLength(1);
    expect(doc.groups[0]?.folder).toBe(ALERT_FOLDER);
    expect(doc.groups[0]?.interval).toBe("1m");
    expect(rules.map((r) => r.uid)).toEqual(defs.map((d) => d.uid));
    expect(new Set(rules.map((r) => r.uid)).size).toBe(rules.length);
  });

  it("uses exactly the expressions promtool checked, with the same threshold and direction", () => {
    for (const [i, rule] of rules.entries()) {
      const def = defs[i];
      if (def === undefined) throw new Error("missing definition");
      const [query, threshold] = rule.data;
      expect(query?.datasourceUid).toBe("prometheus");
      expect(query?.model.expr).toBe(def.query);
      expect(threshold?.datasourceUid).toBe("__expr__");
      expect(threshold?.model).toMatchObject({ type: "threshold", expression: "A" });
      expect(threshold?.model.conditions?.[0]?.evaluator).toEqual({
        type: def.op,
        params: [def.threshold],
      });
      expect(rule.condition).toBe("B");
      expect(rule.for).toBe(def.for);
      expect(rule.labels.severity).toBe(def.severity);
      expect(rule.annotations.summary).toBe(def.summary);
      expect(alertExpression(def)).toContain(def.query);
    }
  });

  it("has the thresholds and severities the product promises", () => {
    const summary = rules.map((r, i) => ({
      alert: defs[i]?.alert,
      op: r.data[1]?.model.conditions?.[0]?.evaluator.type,
      threshold: r.data[1]?.model.conditions?.[0]?.evaluator.params[0],
      for: r.for,
      severity: r.labels.severity,
    }));
    expect(summary).toEqual([
      { alert: "SupabaseCpuBusy", op: "gt", threshold: 85, for: "10m", severity: "warning" },
      { alert: "SupabaseMemoryLow", op: "lt", threshold: 10, for: "10m", severity: "critical" },
      { alert: "SupabaseDiskFull", op: "gt", threshold: 90, for: "5m", severity: "critical" },
      {
        alert: "SupabaseConnectionsSaturated",
        op: "gt",
        threshold: 80,
        for: "5m",
        severity: "warning",
      },
      { alert: "SupabasePostgresDown", op: "gt", threshold: 0, for: "5m", severity: "critical" },
      { alert: "SupabaseDeadlocks", op: "gt", threshold: 0, for: "1m", severity: "warning" },
    ]);
    expect(byAlert("SupabaseMemoryLow").query).toContain("node_memory_MemAvailable_bytes");
    expect(rules.find((r) => r.uid === "supafana-postgres-down")?.noDataState).toBe("Alerting");
  });

  it("puts the project's max connections into the saturation expression", () => {
    const custom = defaultAlertDefinitions({ ref: REF, maxDbConnections: 200 });
    expect(custom.find((d) => d.alert === "SupabaseConnectionsSaturated")?.query).toMatch(
      /\/ 200$/,
    );
    expect(byAlert("SupabaseConnectionsSaturated").query).toMatch(/\/ 60$/);
    expect(defaultAlertDefinitions({ ref: REF })).toEqual(defs);
  });

  it("keeps $ out of labels (Grafana expands environment variables there)", () => {
    for (const rule of rules) {
      for (const value of Object.values(rule.labels)) expect(value).not.toContain("$");
    }
  });

  it("emails every alert to the addresses when SMTP is configured", () => {
    expect(doc.contactPoints?.[0]?.name).toBe(EMAIL_CONTACT_POINT);
    expect(doc.contactPoints?.[0]?.receivers[0]).toMatchObject({
      type: "email",
      settings: { addresses: "dev@example.com;ops@example.com" },
    });
    expect(doc.policies?.[0]?.receiver).toBe(EMAIL_CONTACT_POINT);
  });

  it("when SMTP is missing or there are no addresses, then no contact point or policy is provisioned", () => {
    for (const input of [hostInput({ smtp: undefined }), hostInput({ alertEmails: [] })]) {
      const other = parse(renderAlertRules(input)) as GrafanaAlerting;
      expect(other.contactPoints).toBeUndefined();
      expect(other.policies).toBeUndefined();
      expect(other.groups[0]?.rules).toHaveLength(defs.length);
    }
  });

  it("when an address or the ref is invalid, then it throws", () => {
    expect(() => renderAlertRules(hostInput({ alertEmails: ["a@b.c;evil@x.y"] }))).toThrow();
    expect(() => renderAlertRules(hostInput({ ref: "x" }))).toThrow();
  });
});
