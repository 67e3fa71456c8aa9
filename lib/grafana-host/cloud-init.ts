/**
 * cloud-init user data for a project's Grafana VM (Ubuntu on Azure).
 *
 * What the host ends up running:
 * - The managed data disk (LUN 0) is partitioned and formatted once (`overwrite: false`: an
 *   existing filesystem labelled {@link DATA_LABEL} is reused, so a re-created VM attached to the
 *   same disk keeps its data) and mounted at `/data` with `nofail`.
 * - Docker from Ubuntu's archive, and two systemd units running the pinned official images with
 *   host networking and `Restart=always`:
 *   - Prometheus (uid 65534), TSDB in `/data/prometheus`, listening on 127.0.0.1:9090 only,
 *     scraping the Supabase metrics endpoint every 60 s with the key read from a file.
 *   - Grafana OSS (uid 472), data in `/data/grafana`, listening on :3000 (the gateway proxies
 *     `https://<ref>.<domain>` to it). Health endpoint: `GET http://<vm-ip>:3000/api/health`.
 * - Provisioned datasource (uid `prometheus`), the Supabase dashboard (downloaded at boot from a
 *   pinned commit, optionally checked against a sha256), default alert rules and, with SMTP, an
 *   email contact point and notification policy.
 *
 * Secrets (service key, Grafana admin password, SMTP password) are written only as base64
 * `write_files` entries with mode 0600, then handed to the containers as read-only file mounts
 * and read through Prometheus `password_file` and Grafana `$__file{…}` values. They never appear
 * in a command line, a unit file, an environment variable, or a log line.
 */
import { stringify } from "yaml";

import { renderAlertRules } from "./alerts.js";
import {
  GRAFANA_CONTAINER,
  renderDashboardProvisioning,
  renderDatasourceProvisioning,
  renderGrafanaEnv,
} from "./grafana.js";
import { PROMETHEUS_KEY_DIR, renderPrometheusConfig } from "./prometheus.js";
import type { GrafanaHostInput } from "./types.js";
import { resolveInput, type ResolvedInput } from "./validate.js";

/** Filesystem label of the data disk. */
export const DATA_LABEL = "supafana-data";
export const DATA_MOUNT = "/data";

export const PROMETHEUS_UID = 65534;
export const GRAFANA_UID = 472;

/** Paths on the host. */
export const HOST_PATHS = {
  /**
   * In a directory of its own, mounted as a directory: a key rotation replaces the file by
   * rename, and a single-file bind mount would keep showing the container the old inode.
   */
  serviceKeyDir: "/etc/supafana/secrets/prometheus",
  serviceKey: "/etc/supafana/secrets/prometheus/supabase-service-key",
  adminPassword: "/etc/supafana/secrets/grafana-admin-password",
  smtpPassword: "/etc/supafana/secrets/smtp-password",
  prometheusConfig: "/etc/supafana/prometheus/prometheus.yml",
  grafanaEnv: "/etc/supafana/grafana/grafana.env",
  provisioning: "/etc/supafana/grafana/provisioning",
  dashboardsDir: "/var/lib/supafana/dashboards",
  dashboardSource: "/var/lib/supafana/dashboard.source",
  libDir: "/usr/local/lib/supafana",
  prometheusData: "/data/prometheus",
  grafanaData: "/data/grafana",
} as const;

export const UNITS = {
  prometheus: "supafana-prometheus.service",
  grafana: "supafana-grafana.service",
  dashboard: "supafana-dashboard.service",
  adminPassword: "supafana-grafana-admin.service",
} as const;

const SETUP_SCRIPT = `${HOST_PATHS.libDir}/setup.sh`;
const FETCH_DASHBOARD_SCRIPT = `${HOST_PATHS.libDir}/fetch-dashboard.sh`;
const SYNC_ADMIN_SCRIPT = `${HOST_PATHS.libDir}/sync-admin-password.sh`;

interface WriteFile {
  path: string;
  content: string;
  owner: string;
  permissions: string;
  encoding?: "b64";
}

function secretFile(path: string, value: string): WriteFile {
  return {
    path,
    content: Buffer.from(value, "utf8").toString("base64"),
    encoding: "b64",
    owner: "root:root",
    permissions: "0600",
  };
}

function plainFile(path: string, content: string, permissions = "0644"): WriteFile {
  return { path, content, owner: "root:root", permissions };
}

function imageVersion(image: string): string {
  const tag = /:([^:@/]+)(?:@|$)/.exec(image.slice(image.lastIndexOf("/")))?.[1] ?? "";
  return tag.replace(/^v/, "");
}

function unit(lines: string[]): string {
  return `${lines.join("\n")}\n`;
}

function prometheusUnit(r: ResolvedInput): string {
  return unit([
    "[Unit]",
    "Description=Supafana Prometheus (scrapes the Supabase metrics endpoint)",
    "Requires=docker.service",
    "After=docker.service network-online.target",
    "Wants=network-online.target",
    `RequiresMountsFor=${DATA_MOUNT}`,
    "StartLimitIntervalSec=0",
    "",
    "[Service]",
    "Restart=always",
    "RestartSec=10",
    "TimeoutStartSec=15min",
    "ExecStartPre=-/usr/bin/docker rm -f supafana-prometheus",
    "ExecStart=/usr/bin/docker run --rm --name supafana-prometheus \\",
    `  --network host --user ${PROMETHEUS_UID}:${PROMETHEUS_UID} --log-driver journald \\`,
    `  -v ${HOST_PATHS.prometheusConfig}:/etc/prometheus/prometheus.yml:ro \\`,
    `  -v ${HOST_PATHS.serviceKeyDir}:${PROMETHEUS_KEY_DIR}:ro \\`,
    `  -v ${HOST_PATHS.prometheusData}:/prometheus \\`,
    `  ${r.images.prometheus} \\`,
    "  --config.file=/etc/prometheus/prometheus.yml \\",
    "  --storage.tsdb.path=/prometheus \\",
    `  --storage.tsdb.retention.time=${r.retentionTime} \\`,
    `  --storage.tsdb.retention.size=${r.retentionSize} \\`,
    "  --web.listen-address=127.0.0.1:9090",
    "ExecStop=/usr/bin/docker stop -t 30 supafana-prometheus",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
  ]);
}

function grafanaUnit(r: ResolvedInput): string {
  const secretMounts = [
    `  -v ${HOST_PATHS.adminPassword}:${GRAFANA_CONTAINER.adminPasswordFile}:ro \\`,
  ];
  if (r.smtp !== undefined) {
    secretMounts.push(
      `  -v ${HOST_PATHS.smtpPassword}:${GRAFANA_CONTAINER.smtpPasswordFile}:ro \\`,
    );
  }
  return unit([
    "[Unit]",
    "Description=Supafana Grafana",
    "Requires=docker.service",
    `After=docker.service network-online.target ${UNITS.prometheus} ${UNITS.dashboard}`,
    `Wants=network-online.target ${UNITS.dashboard}`,
    `RequiresMountsFor=${DATA_MOUNT}`,
    "StartLimitIntervalSec=0",
    "",
    "[Service]",
    "Restart=always",
    "RestartSec=10",
    "TimeoutStartSec=15min",
    "ExecStartPre=-/usr/bin/docker rm -f supafana-grafana",
    "ExecStart=/usr/bin/docker run --rm --name supafana-grafana \\",
    `  --network host --user ${GRAFANA_UID}:0 --log-driver journald \\`,
    `  --env-file ${HOST_PATHS.grafanaEnv} \\`,
    `  -v ${HOST_PATHS.grafanaData}:${GRAFANA_CONTAINER.dataDir} \\`,
    `  -v ${HOST_PATHS.provisioning}:${GRAFANA_CONTAINER.provisioningDir}:ro \\`,
    `  -v ${HOST_PATHS.dashboardsDir}:${GRAFANA_CONTAINER.dashboardsDir}:ro \\`,
    ...secretMounts,
    `  ${r.images.grafana}`,
    "ExecStop=/usr/bin/docker stop -t 30 supafana-grafana",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
  ]);
}

function dashboardUnit(): string {
  return unit([
    "[Unit]",
    "Description=Supafana: download the pinned Supabase dashboard",
    "After=network-online.target",
    "Wants=network-online.target",
    "StartLimitIntervalSec=0",
    "",
    "[Service]",
    "Type=oneshot",
    "RemainAfterExit=yes",
    "Restart=on-failure",
    "RestartSec=30",
    `ExecStart=${FETCH_DASHBOARD_SCRIPT}`,
    "",
    "[Install]",
    "WantedBy=multi-user.target",
  ]);
}

function adminPasswordUnit(): string {
  return unit([
    "[Unit]",
    "Description=Supafana: make the Grafana admin password match the host secret",
    `Requires=${UNITS.grafana}`,
    `After=${UNITS.grafana}`,
    "",
    "[Service]",
    "Type=oneshot",
    `ExecStart=${SYNC_ADMIN_SCRIPT}`,
    "",
    "[Install]",
    "WantedBy=multi-user.target",
  ]);
}

function setupScript(r: ResolvedInput): string {
  const grafanaSecrets: string[] = [HOST_PATHS.adminPassword];
  if (r.smtp !== undefined) grafanaSecrets.push(HOST_PATHS.smtpPassword);
  const units = [UNITS.dashboard, UNITS.prometheus, UNITS.grafana, UNITS.adminPassword].join(" ");
  return [
    "#!/bin/bash",
    "# Supafana Grafana host: first-boot setup, run once by cloud-init. The units take over after.",
    "set -euo pipefail",
    'log() { echo "supafana-setup: $*"; }',
    "",
    "# Never let Prometheus or Grafana write their data to the OS disk.",
    "for _ in $(seq 1 60); do",
    `  mountpoint -q ${DATA_MOUNT} && break`,
    `  mount ${DATA_MOUNT} 2>/dev/null || true`,
    "  sleep 5",
    "done",
    `if ! mountpoint -q ${DATA_MOUNT}; then`,
    `  log "${DATA_MOUNT} is not mounted (data disk missing?); not starting services" >&2`,
    "  exit 1",
    "fi",
    "",
    `install -d -m 0750 -o ${PROMETHEUS_UID} -g ${PROMETHEUS_UID} ${HOST_PATHS.prometheusData}`,
    `install -d -m 0750 -o ${GRAFANA_UID} -g 0 ${HOST_PATHS.grafanaData}`,
    `install -d -m 0755 ${HOST_PATHS.dashboardsDir} ${HOST_PATHS.provisioning}/plugins`,
    "",
    "# The containers run as their own uids; give each only the secret files it reads.",
    `chown ${PROMETHEUS_UID}:${PROMETHEUS_UID} ${HOST_PATHS.serviceKeyDir} ${HOST_PATHS.serviceKey}`,
    `chmod 0700 ${HOST_PATHS.serviceKeyDir}`,
    `chown ${GRAFANA_UID}:0 ${grafanaSecrets.join(" ")}`,
    `chmod 0600 ${HOST_PATHS.serviceKey} ${grafanaSecrets.join(" ")}`,
    "",
    "systemctl daemon-reload",
    "systemctl enable --now docker.service",
    `systemctl enable ${units}`,
    `systemctl start --no-block ${units}`,
    'log "services enabled"',
    "",
  ].join("\n");
}

function fetchDashboardScript(r: ResolvedInput): string {
  const dest = `${HOST_PATHS.dashboardsDir}/supabase.json`;
  return [
    "#!/bin/bash",
    "# Downloads the pinned Supabase dashboard for Grafana's file provisioning.",
    "set -euo pipefail",
    `url='${r.dashboardUrl}'`,
    `expected_sha256='${r.dashboardSha256 ?? ""}'`,
    `dest='${dest}'`,
    `source_file='${HOST_PATHS.dashboardSource}'`,
    'if [ -s "$dest" ] && [ "$(cat "$source_file" 2>/dev/null || true)" = "$url" ]; then exit 0; fi',
    'tmp="$(mktemp)"',
    "trap 'rm -f \"$tmp\"' EXIT",
    'curl -fsSL --retry 5 --retry-delay 5 --retry-connrefused --max-time 120 -o "$tmp" "$url"',
    'if [ -n "$expected_sha256" ]; then',
    '  echo "$expected_sha256  $tmp" | sha256sum -c --quiet -',
    "fi",
    "python3 -c 'import json, sys; json.load(open(sys.argv[1]))' \"$tmp\"",
    `install -d -m 0755 '${HOST_PATHS.dashboardsDir}'`,
    'install -m 0644 "$tmp" "$dest"',
    'printf "%s\\n" "$url" > "$source_file"',
    'echo "supafana: dashboard installed from $url"',
    "",
  ].join("\n");
}

function syncAdminScript(): string {
  return [
    "#!/bin/bash",
    "# Grafana applies the configured admin password only when it creates its database. A VM",
    "# re-created on an existing data disk keeps the old password, so reset it from the secret file.",
    "# The password goes through stdin, never as an argument.",
    "set -euo pipefail",
    "for _ in $(seq 1 120); do",
    "  if curl -fsS -o /dev/null http://127.0.0.1:3000/api/health; then",
    "    docker exec -i supafana-grafana grafana cli admin reset-admin-password --password-from-stdin \\",
    `      < ${HOST_PATHS.adminPassword} > /dev/null`,
    '    echo "supafana: grafana admin password in sync"',
    "    exit 0",
    "  fi",
    "  sleep 5",
    "done",
    'echo "supafana: grafana did not become healthy; admin password not synced" >&2',
    "exit 1",
    "",
  ].join("\n");
}

/** Everything the host needs, as cloud-init `write_files` entries. */
function writeFiles(r: ResolvedInput): WriteFile[] {
  const files: WriteFile[] = [
    secretFile(HOST_PATHS.serviceKey, r.serviceRoleKey),
    secretFile(HOST_PATHS.adminPassword, r.grafanaAdminPassword),
  ];
  if (r.smtp !== undefined) files.push(secretFile(HOST_PATHS.smtpPassword, r.smtp.password));
  files.push(
    plainFile(HOST_PATHS.prometheusConfig, renderPrometheusConfig(r.ref)),
    plainFile(HOST_PATHS.grafanaEnv, renderGrafanaEnv(r)),
    plainFile(
      `${HOST_PATHS.provisioning}/datasources/prometheus.yaml`,
      renderDatasourceProvisioning(imageVersion(r.images.prometheus)),
    ),
    plainFile(`${HOST_PATHS.provisioning}/dashboards/supabase.yaml`, renderDashboardProvisioning()),
    plainFile(
      `${HOST_PATHS.provisioning}/alerting/supafana.yaml`,
      renderAlertRules({
        ref: r.ref,
        alertEmails: r.alertEmails,
        smtp: r.smtp,
        maxDbConnections: r.maxDbConnections,
        ...(r.alerts ? { alerts: r.alerts } : {}),
      }),
    ),
    plainFile(`/etc/systemd/system/${UNITS.prometheus}`, prometheusUnit(r)),
    plainFile(`/etc/systemd/system/${UNITS.grafana}`, grafanaUnit(r)),
    plainFile(`/etc/systemd/system/${UNITS.dashboard}`, dashboardUnit()),
    plainFile(`/etc/systemd/system/${UNITS.adminPassword}`, adminPasswordUnit()),
    plainFile(SETUP_SCRIPT, setupScript(r), "0755"),
    plainFile(FETCH_DASHBOARD_SCRIPT, fetchDashboardScript(r), "0755"),
    plainFile(SYNC_ADMIN_SCRIPT, syncAdminScript(), "0755"),
  );
  return files;
}

export function renderCloudInit(input: GrafanaHostInput): string {
  const r = resolveInput(input);
  const device = r.dataDiskDevice;
  const doc = {
    disk_setup: {
      [device]: { table_type: "gpt", layout: true, overwrite: false },
    },
    fs_setup: [
      { label: DATA_LABEL, filesystem: "ext4", device, partition: "auto", overwrite: false },
    ],
    mounts: [
      [
        `LABEL=${DATA_LABEL}`,
        DATA_MOUNT,
        "ext4",
        "defaults,nofail,x-systemd.device-timeout=60s",
        "0",
        "2",
      ],
    ],
    package_update: true,
    packages: ["docker.io", "curl", "ca-certificates", "python3"],
    write_files: writeFiles(r),
    runcmd: [[SETUP_SCRIPT]],
  };
  return `#cloud-config\n${stringify(doc, { lineWidth: 0 })}`;
}
