/**
 * Default alerts for a project, on the metrics the Supabase endpoint exports (node_exporter and
 * postgres_exporter names, every series labelled `supabase_project_ref`). Which are on, their
 * thresholds, `for` durations and the connection limit come from the per-instance settings
 * (`alert-catalog.ts`); the defaults are:
 *
 * - CPU busy > 85 % for 10 min: `node_cpu_seconds_total` (1 - idle share across all cores).
 * - Memory available < 10 % for 10 min: `node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes`.
 *   (Available, not used: the alert fires when almost nothing is left.)
 * - Disk used > 90 % on `/` or `/data` for 5 min: `node_filesystem_avail_bytes / node_filesystem_size_bytes`.
 *   Supabase keeps Postgres data on `/data`; both mounts are watched, one alert per mount.
 * - Connections > 80 % of the project's max for 5 min: `pg_stat_database_num_backends`.
 * - Postgres down for 5 min: `pg_up == 0`, or `pg_up` absent (endpoint unreachable, key revoked,
 *   project paused).
 * - Deadlocks: more than 0 in 5 min (`increase(pg_stat_database_deadlocks_total[5m])`).
 *
 * Every rule's `condition` names the threshold expression (`B`) it defines, and a disabled
 * alert is rendered paused (`isPaused`) rather than left out: a rule missing from a provisioning
 * file would linger in Grafana as it was.
 *
 * Each alert is one PromQL query yielding the measured value plus a comparison. The same
 * definitions render a Grafana unified-alerting provisioning file (what the host uses) and a
 * Prometheus rules file (so `promtool check rules` can syntax-check every expression).
 */
import { stringify } from "yaml";

import { resolveAlertSettings } from "./alert-catalog.js";
import type { GrafanaHostInput } from "./types.js";
import { assertEmail, assertRef } from "./validate.js";
import { PROMETHEUS_DATASOURCE_UID } from "./versions.js";

export type AlertSeverity = "warning" | "critical";

export interface AlertDefinition {
  /** Catalog id (the API's alert id). */
  id: string;
  /** Whether the rule evaluates (a disabled rule stays provisioned, paused). */
  enabled: boolean;
  /** Grafana rule uid (stable across renders). */
  uid: string;
  /** Prometheus alert name. */
  alert: string;
  /** Grafana rule title. */
  title: string;
  /** PromQL giving the measured value. */
  query: string;
  op: "gt" | "lt";
  threshold: number;
  for: string;
  severity: AlertSeverity;
  summary: string;
  /** Description with `VALUE` where the measured value goes. */
  description: string;
  /** Grafana state when the query returns nothing. */
  noDataState: "OK" | "Alerting";
}

export const ALERT_FOLDER = "Supafana";
export const EMAIL_CONTACT_POINT = "supafana-email";

export type AlertInput = Pick<
  GrafanaHostInput,
  "ref" | "alertEmails" | "smtp" | "maxDbConnections" | "alerts"
>;

const minutes = (n: number) => `${n}m`;
const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? "" : "s"}`;

export function defaultAlertDefinitions(
  input: Pick<AlertInput, "ref" | "maxDbConnections" | "alerts">,
): AlertDefinition[] {
  const ref = assertRef(input.ref);
  const maxDb = input.maxDbConnections;
  if (maxDb !== undefined && (!Number.isInteger(maxDb) || maxDb < 1)) {
    throw new Error(`maxDbConnections must be a positive integer, got ${maxDb}`);
  }
  const settings = resolveAlertSettings(input.alerts, {
    ...(maxDb !== undefined ? { maxConnections: maxDb } : {}),
  });
  const s = (id: string) => {
    const v = settings[id];
    if (!v) throw new Error(`no settings for alert ${id}`);
    return { enabled: v.enabled, p: (name: string) => v.params[name] ?? 0 };
  };
  const sel = `supabase_project_ref="${ref}"`;
  const fs = `${sel},mountpoint=~"/|/data",fstype!~"tmpfs|rootfs"`;
  const cpu = s("high-cpu");
  const mem = s("low-memory");
  const disk = s("disk-full");
  const conn = s("connections");
  const down = s("postgres-down");
  const dead = s("deadlocks");
  const maxConnections = conn.p("maxConnections");
  return [
    {
      id: "high-cpu",
      enabled: cpu.enabled,
      uid: "supafana-cpu-busy",
      alert: "SupabaseCpuBusy",
      title: "High CPU usage",
      query: `100 * (1 - avg(rate(node_cpu_seconds_total{${sel},mode="idle"}[5m])))`,
      op: "gt",
      threshold: cpu.p("threshold"),
      for: minutes(cpu.p("for")),
      severity: "warning",
      summary: `Database CPU of ${ref} has been above ${cpu.p("threshold")}% for ${plural(cpu.p("for"), "minute")}`,
      description: "CPU busy is VALUE% (all cores).",
      noDataState: "OK",
    },
    {
      id: "low-memory",
      enabled: mem.enabled,
      uid: "supafana-memory-low",
      alert: "SupabaseMemoryLow",
      title: "Low available memory",
      query: `100 * sum(node_memory_MemAvailable_bytes{${sel}}) / sum(node_memory_MemTotal_bytes{${sel}})`,
      op: "lt",
      threshold: mem.p("threshold"),
      for: minutes(mem.p("for")),
      severity: "critical",
      summary: `Database server of ${ref} has had less than ${mem.p("threshold")}% memory available for ${plural(mem.p("for"), "minute")}`,
      description: "Available memory is VALUE% of total.",
      noDataState: "OK",
    },
    {
      id: "disk-full",
      enabled: disk.enabled,
      uid: "supafana-disk-full",
      alert: "SupabaseDiskFull",
      title: "Disk almost full",
      query: `max by (mountpoint) (100 * (1 - node_filesystem_avail_bytes{${fs}} / node_filesystem_size_bytes{${fs}}))`,
      op: "gt",
      threshold: disk.p("threshold"),
      for: minutes(disk.p("for")),
      severity: "critical",
      summary: `A disk of ${ref} is more than ${disk.p("threshold")}% full`,
      description: "Filesystem MOUNTPOINT is VALUE% used.",
      noDataState: "OK",
    },
    {
      id: "connections",
      enabled: conn.enabled,
      uid: "supafana-connections",
      alert: "SupabaseConnectionsSaturated",
      title: "Database connections near the limit",
      query: `100 * sum(pg_stat_database_num_backends{${sel}}) / ${maxConnections}`,
      op: "gt",
      threshold: conn.p("threshold"),
      for: minutes(conn.p("for")),
      severity: "warning",
      summary: `Postgres of ${ref} is using more than ${conn.p("threshold")}% of its ${maxConnections} connections`,
      description: `Connections in use: VALUE% of ${maxConnections}.`,
      noDataState: "OK",
    },
    {
      id: "postgres-down",
      enabled: down.enabled,
      uid: "supafana-postgres-down",
      alert: "SupabasePostgresDown",
      title: "Postgres down",
      query: `(1 - min(pg_up{${sel}})) or absent(pg_up{${sel}})`,
      op: "gt",
      threshold: 0,
      for: minutes(down.p("for")),
      severity: "critical",
      summary: `Postgres of ${ref} is down, or its metrics have stopped arriving`,
      description: `pg_up has been 0 or missing for ${plural(down.p("for"), "minute")}.`,
      noDataState: "Alerting",
    },
    {
      id: "deadlocks",
      enabled: dead.enabled,
      uid: "supafana-deadlocks",
      alert: "SupabaseDeadlocks",
      title: "Deadlocks",
      query: `sum(increase(pg_stat_database_deadlocks_total{${sel}}[5m]))`,
      op: "gt",
      threshold: dead.p("threshold"),
      for: minutes(dead.p("for")),
      severity: "warning",
      summary: `Postgres of ${ref} had more than ${plural(dead.p("threshold"), "deadlock")} in 5 minutes`,
      description: "Deadlocks in the last 5 minutes: VALUE.",
      noDataState: "OK",
    },
  ];
}

function describe(def: AlertDefinition, value: string, mountpoint: string): string {
  return def.description.replace("VALUE", value).replace("MOUNTPOINT", mountpoint);
}

/** The comparison as PromQL, e.g. `(<query>) > 85`. */
export function alertExpression(def: AlertDefinition): string {
  return `(${def.query}) ${def.op === "gt" ? ">" : "<"} ${def.threshold}`;
}

function resolveEmails(input: AlertInput): string[] {
  return [...new Set(input.alertEmails.map(assertEmail))].sort();
}

/**
 * Grafana unified-alerting provisioning file: the default rules, plus an email contact point and
 * a notification policy routing every alert to it when SMTP is configured and there are
 * addresses. (Grafana does not expand `$` in annotations, so the `{{ … }}` templates stay as they
 * are; labels and contact-point settings hold no `$`.)
 */
export function renderAlertRules(input: AlertInput): string {
  const ref = assertRef(input.ref);
  const defs = defaultAlertDefinitions(input);
  const emails = resolveEmails(input);
  const doc: Record<string, unknown> = {
    apiVersion: 1,
    groups: [
      {
        orgId: 1,
        name: "supabase-defaults",
        folder: ALERT_FOLDER,
        interval: "1m",
        rules: defs.map((def) => ({
          uid: def.uid,
          title: def.title,
          condition: "B",
          data: [
            {
              refId: "A",
              relativeTimeRange: { from: 600, to: 0 },
              datasourceUid: PROMETHEUS_DATASOURCE_UID,
              model: {
                refId: "A",
                datasource: { type: "prometheus", uid: PROMETHEUS_DATASOURCE_UID },
                expr: def.query,
                instant: true,
                range: false,
                intervalMs: 60000,
                maxDataPoints: 43200,
              },
            },
            {
              refId: "B",
              relativeTimeRange: { from: 0, to: 0 },
              datasourceUid: "__expr__",
              model: {
                refId: "B",
                datasource: { type: "__expr__", uid: "__expr__" },
                type: "threshold",
                expression: "A",
                conditions: [{ evaluator: { type: def.op, params: [def.threshold] } }],
              },
            },
          ],
          noDataState: def.noDataState,
          execErrState: "Error",
          for: def.for,
          isPaused: !def.enabled,
          labels: { severity: def.severity, supabase_project_ref: ref },
          annotations: {
            summary: def.summary,
            description: describe(
              def,
              "{{ humanize $values.A.Value }}",
              "{{ $labels.mountpoint }}",
            ),
          },
        })),
      },
    ],
  };
  if (input.smtp !== undefined && emails.length > 0) {
    doc.contactPoints = [
      {
        orgId: 1,
        name: EMAIL_CONTACT_POINT,
        receivers: [
          {
            uid: EMAIL_CONTACT_POINT,
            type: "email",
            settings: { addresses: emails.join(";"), singleEmail: false },
            disableResolveMessage: false,
          },
        ],
      },
    ];
    doc.policies = [
      {
        orgId: 1,
        receiver: EMAIL_CONTACT_POINT,
        group_by: ["grafana_folder", "alertname"],
        group_wait: "30s",
        group_interval: "5m",
        repeat_interval: "4h",
      },
    ];
  } else if (input.alerts !== undefined) {
    // Managed settings with nobody to e-mail: take back what an earlier push provisioned (the
    // policy first, then the contact point it routed to).
    doc.resetPolicies = [1];
    doc.deleteContactPoints = [{ orgId: 1, uid: EMAIL_CONTACT_POINT }];
  }
  return stringify(doc, { lineWidth: 0 });
}

/** The same alerts as a Prometheus rules file (used to validate the PromQL with promtool). */
export function renderPrometheusRules(
  input: Pick<AlertInput, "ref" | "maxDbConnections" | "alerts">,
): string {
  const ref = assertRef(input.ref);
  const doc = {
    groups: [
      {
        name: `supafana-${ref}`,
        interval: "1m",
        rules: defaultAlertDefinitions(input)
          .filter((def) => def.enabled)
          .map((def) => ({
            alert: def.alert,
            expr: alertExpression(def),
            for: def.for,
            labels: { severity: def.severity },
            annotations: {
              summary: def.summary,
              description: describe(def, "{{ humanize $value }}", "{{ $labels.mountpoint }}"),
            },
          })),
      },
    ],
  };
  return stringify(doc, { lineWidth: 0 });
}
