import { spawnSync } from "node:child_process";

import { describe, expect, it } from "vitest";

import {
  DATA_LABEL,
  GRAFANA_IMAGE,
  GrafanaHostInputError,
  HOST_PATHS,
  PROMETHEUS_IMAGE,
  SUPABASE_DASHBOARD_URL,
  UNITS,
  renderCloudInit,
} from "../../../lib/grafana-host/index.js";
import { REF, SECRETS, execStart, fileContent, hostInput, parseCloudConfig } from "./helpers.js";

const unitPath = (name: string) => `/etc/systemd/system/${name}`;
const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");

describe("renderCloudInit", () => {
  const text = renderCloudInit(hostInput());
  const config = parseCloudConfig(text);

  it("is a #cloud-config document and deterministic", () => {
    expect(text.startsWith("#cloud-config\n")).toBe(true);
    expect(renderCloudInit(hostInput())).toBe(text);
  });

  it("formats the LUN 0 data disk only if it has no filesystem and mounts it at /data with nofail", () => {
    const device = "/dev/disk/azure/scsi1/lun0";
    expect(config.disk_setup[device]).toEqual({
      table_type: "gpt",
      layout: true,
      overwrite: false,
    });
    expect(config.fs_setup).toEqual([
      { label: DATA_LABEL, filesystem: "ext4", device, partition: "auto", overwrite: false },
    ]);
    expect(config.mounts).toHaveLength(1);
    const [what, where, fstype, options] = config.mounts[0] ?? [];
    expect(what).toBe(`LABEL=${DATA_LABEL}`);
    expect(where).toBe("/data");
    expect(fstype).toBe("ext4");
    expect(options?.split(",")).toContain("nofail");
  });

  it("installs the container runtime from the distribution", () => {
    expect(config.package_update).toBe(true);
    expect(config.packages).toContain("docker.io");
  });

  it("writes each secret once, base64, root-owned, mode 0600, and never in clear anywhere", () => {
    const secrets: [string, string][] = [
      [HOST_PATHS.serviceKey, SECRETS.serviceRoleKey],
      [HOST_PATHS.adminPassword, SECRETS.grafanaAdminPassword],
      [HOST_PATHS.smtpPassword, SECRETS.smtpPassword],
    ];
    for (const [path, secret] of secrets) {
      const entries = config.write_files.filter((f) => f.path === path);
      expect(entries).toHaveLength(1);
      expect(entries[0]).toMatchObject({
        owner: "root:root",
        permissions: "0600",
        encoding: "b64",
      });
      expect(fileContent(config, path)).toBe(secret);
      expect(text).not.toContain(secret);
      // The encoded form appears only in its own entry.
      const elsewhere = config.write_files.filter(
        (f) => f.path !== path && f.content.includes(b64(secret)),
      );
      expect(elsewhere).toEqual([]);
    }
  });

  it("keeps secrets out of runcmd, unit command lines and the Grafana environment", () => {
    const forbidden = [
      SECRETS.serviceRoleKey,
      SECRETS.grafanaAdminPassword,
      SECRETS.smtpPassword,
    ].flatMap((s) => [s, b64(s)]);
    const runcmd = JSON.stringify(config.runcmd);
    const units = Object.values(UNITS).map((u) => fileContent(config, unitPath(u)));
    const scripts = config.write_files.filter((f) => f.path.endsWith(".sh")).map((f) => f.content);
    const env = fileContent(config, HOST_PATHS.grafanaEnv);
    for (const secret of forbidden) {
      expect(runcmd).not.toContain(secret);
      for (const u of units) expect(u).not.toContain(secret);
      for (const s of scripts) expect(s).not.toContain(secret);
      expect(env).not.toContain(secret);
    }
    expect(env).toContain(
      "GF_SECURITY_ADMIN_PASSWORD=$__file{/run/secrets/grafana-admin-password}\n",
    );
    expect(env).toContain("GF_SMTP_PASSWORD=$__file{/run/secrets/smtp-password}\n");
    expect(env).not.toMatch(/__FILE=/);
    expect(config.runcmd).toEqual([[`${HOST_PATHS.libDir}/setup.sh`]]);
  });

  it("runs pinned Prometheus with the key file, data on /data, loopback only, retention capped", () => {
    const unit = fileContent(config, unitPath(UNITS.prometheus));
    const cmd = execStart(unit);
    expect(cmd).toContain(` ${PROMETHEUS_IMAGE} `);
    expect(PROMETHEUS_IMAGE).toMatch(/^prom\/prometheus:v\d+\.\d+\.\d+$/);
    expect(cmd).toContain("--user 65534:65534");
    expect(cmd).toContain(`-v ${HOST_PATHS.serviceKeyDir}:/etc/prometheus/secrets:ro`);
    expect(cmd).toContain("-v /data/prometheus:/prometheus");
    expect(cmd).toContain("--storage.tsdb.retention.time=90d");
    expect(cmd).toContain("--storage.tsdb.retention.size=8GB");
    expect(cmd).toContain("--web.listen-address=127.0.0.1:9090");
    expect(unit).toContain("Restart=always");
    expect(unit).toContain("RequiresMountsFor=/data");
  });

  it("runs pinned Grafana OSS as uid 472 on :3000 with provisioning and secret files mounted read-only", () => {
    const unit = fileContent(config, unitPath(UNITS.grafana));
    const cmd = execStart(unit);
    expect(cmd.endsWith(` ${GRAFANA_IMAGE}`)).toBe(true);
    expect(GRAFANA_IMAGE).toMatch(/^grafana\/grafana:\d+\.\d+\.\d+$/);
    expect(cmd).toContain("--user 472:0");
    expect(cmd).toContain("--network host");
    expect(cmd).toContain(`--env-file ${HOST_PATHS.grafanaEnv}`);
    expect(cmd).toContain("-v /data/grafana:/var/lib/grafana");
    expect(cmd).toContain(`-v ${HOST_PATHS.adminPassword}:/run/secrets/grafana-admin-password:ro`);
    expect(cmd).toContain(`-v ${HOST_PATHS.smtpPassword}:/run/secrets/smtp-password:ro`);
    // Grafana never sees the Supabase key.
    expect(cmd).not.toContain(HOST_PATHS.serviceKey);
    expect(cmd).not.toContain(HOST_PATHS.serviceKeyDir);
    expect(unit).toContain("Restart=always");
    expect(unit).toContain("RequiresMountsFor=/data");

    const env = fileContent(config, HOST_PATHS.grafanaEnv);
    for (const line of [
      "GF_SERVER_HTTP_PORT=3000",
      `GF_SERVER_ROOT_URL=https://${REF}.grafana.example.com`,
      "GF_AUTH_ANONYMOUS_ENABLED=false",
      "GF_USERS_ALLOW_SIGN_UP=false",
      "GF_SMTP_ENABLED=true",
      "GF_SMTP_HOST=smtp.example.com:587",
      "GF_SMTP_FROM_ADDRESS=alerts@example.com",
    ]) {
      expect(env.split("\n")).toContain(line);
    }
  });

  it("signs members in through the gateway's auth proxy only, with no login form", () => {
    const env = new Map(
      fileContent(config, HOST_PATHS.grafanaEnv)
        .split("\n")
        .filter(Boolean)
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)] as const),
    );
    const authProxy = Object.fromEntries(
      [...env].filter(([k]) => k.startsWith("GF_AUTH_PROXY_")).sort(([a], [b]) => (a < b ? -1 : 1)),
    );
    // [auth.proxy] exactly: trusted from the gateway's private address alone.
    expect(authProxy).toEqual({
      GF_AUTH_PROXY_AUTO_SIGN_UP: "true",
      GF_AUTH_PROXY_ENABLED: "true",
      GF_AUTH_PROXY_ENABLE_LOGIN_TOKEN: "false",
      GF_AUTH_PROXY_HEADERS: "Email:X-WEBAUTH-EMAIL Name:X-WEBAUTH-NAME Role:X-WEBAUTH-ROLE",
      GF_AUTH_PROXY_HEADER_NAME: "X-WEBAUTH-USER",
      GF_AUTH_PROXY_HEADER_PROPERTY: "username",
      GF_AUTH_PROXY_SYNC_TTL: "1",
      GF_AUTH_PROXY_WHITELIST: "10.40.0.4",
    });
    expect(env.get("GF_AUTH_DISABLE_LOGIN_FORM")).toBe("true");
    expect(env.get("GF_AUTH_ANONYMOUS_ENABLED")).toBe("false");
    expect(env.get("GF_USERS_ALLOW_SIGN_UP")).toBe("false");
    // The admin password stays, from the secret file, for machine use on the VM.
    expect(env.get("GF_SECURITY_ADMIN_PASSWORD")).toBe(
      "$__file{/run/secrets/grafana-admin-password}",
    );
    const other = parseCloudConfig(renderCloudInit(hostInput({ gatewayPrivateIp: "10.9.8.7" })));
    expect(fileContent(other, HOST_PATHS.grafanaEnv)).toContain(
      "\nGF_AUTH_PROXY_WHITELIST=10.9.8.7\n",
    );
  });

  it("prepares data directories for the container uids only once /data is mounted", () => {
    const setup = fileContent(config, `${HOST_PATHS.libDir}/setup.sh`);
    const mountCheck = setup.indexOf("if ! mountpoint -q /data");
    expect(mountCheck).toBeGreaterThan(0);
    expect(setup.indexOf("install -d -m 0750 -o 65534 -g 65534 /data/prometheus")).toBeGreaterThan(
      mountCheck,
    );
    expect(setup).toContain("install -d -m 0750 -o 472 -g 0 /data/grafana");
    expect(setup).toContain(
      `chown 65534:65534 ${HOST_PATHS.serviceKeyDir} ${HOST_PATHS.serviceKey}`,
    );
    expect(setup).toContain("systemctl enable --now docker.service");
  });

  it("provisions the datasource with the uid the dashboard expects and the pinned dashboard", () => {
    const datasource = fileContent(
      config,
      `${HOST_PATHS.provisioning}/datasources/prometheus.yaml`,
    );
    expect(datasource).toContain("uid: prometheus");
    expect(datasource).toContain("url: http://127.0.0.1:9090");
    const dashboards = fileContent(config, `${HOST_PATHS.provisioning}/dashboards/supabase.yaml`);
    expect(dashboards).toContain("path: /var/lib/supafana-dashboards");
    const fetch = fileContent(config, `${HOST_PATHS.libDir}/fetch-dashboard.sh`);
    expect(fetch).toContain(`url='${SUPABASE_DASHBOARD_URL}'`);
    expect(SUPABASE_DASHBOARD_URL).toMatch(
      /^https:\/\/raw\.githubusercontent\.com\/supabase\/supabase-grafana\/[0-9a-f]{40}\/grafana\/dashboard\.json$/,
    );
    expect(fetch).toContain("expected_sha256=''");

    const pinned = parseCloudConfig(
      renderCloudInit(hostInput({ dashboardSha256: "a".repeat(64) })),
    );
    expect(fileContent(pinned, `${HOST_PATHS.libDir}/fetch-dashboard.sh`)).toContain(
      `expected_sha256='${"a".repeat(64)}'`,
    );
  });

  it("provisions the alert rules and, with SMTP, the email contact point", () => {
    const alerting = fileContent(config, `${HOST_PATHS.provisioning}/alerting/supafana.yaml`);
    expect(alerting).toContain("uid: supafana-memory-low");
    expect(alerting).toContain("addresses: dev@example.com;ops@example.com");
  });

  it("when there is no SMTP, then there is no SMTP secret, setting or contact point", () => {
    const noSmtp = parseCloudConfig(renderCloudInit(hostInput({ smtp: undefined })));
    expect(noSmtp.write_files.map((f) => f.path)).not.toContain(HOST_PATHS.smtpPassword);
    expect(fileContent(noSmtp, HOST_PATHS.grafanaEnv)).not.toContain("GF_SMTP_");
    expect(execStart(fileContent(noSmtp, unitPath(UNITS.grafana)))).not.toContain("smtp-password");
    expect(fileContent(noSmtp, `${HOST_PATHS.provisioning}/alerting/supafana.yaml`)).not.toContain(
      "contactPoints",
    );
  });

  it("renders shell scripts that bash can parse", () => {
    for (const file of config.write_files.filter((f) => f.path.endsWith(".sh"))) {
      const res = spawnSync("bash", ["-n"], { input: file.content, encoding: "utf8" });
      expect(res.status, `${file.path}: ${res.stderr}`).toBe(0);
      expect(file.permissions).toBe("0755");
    }
  });

  it("honours overrides for images, disk device and retention", () => {
    const custom = parseCloudConfig(
      renderCloudInit(
        hostInput({
          images: {
            grafana: "grafana/grafana:13.0.1",
            prometheus: "prom/prometheus:v3.5.0@sha256:" + "b".repeat(64),
          },
          dataDiskDevice: "/dev/disk/azure/data/by-lun/0",
          prometheusRetention: { time: "30d", size: "4GB" },
        }),
      ),
    );
    expect(Object.keys(custom.disk_setup)).toEqual(["/dev/disk/azure/data/by-lun/0"]);
    const prom = execStart(fileContent(custom, unitPath(UNITS.prometheus)));
    expect(prom).toContain(`prom/prometheus:v3.5.0@sha256:${"b".repeat(64)}`);
    expect(prom).toContain("--storage.tsdb.retention.time=30d");
    expect(prom).toContain("--storage.tsdb.retention.size=4GB");
    expect(execStart(fileContent(custom, unitPath(UNITS.grafana)))).toContain(
      "grafana/grafana:13.0.1",
    );
  });
});

describe("renderCloudInit input validation", () => {
  it.each([
    ["a bad ref", { ref: "ABC" }],
    ["a bad domain", { domain: "not a domain" }],
    ["a key with a newline", { serviceRoleKey: "abc\ndef" }],
    ["a key with a space", { serviceRoleKey: "abc def" }],
    ["an empty password", { grafanaAdminPassword: "" }],
    ["a gateway address that is not an IPv4", { gatewayPrivateIp: "10.0.0.4\nGF_X=1" }],
    ["a gateway CIDR instead of its address", { gatewayPrivateIp: "10.0.0.0/8" }],
    ["a bad alert email", { alertEmails: ["ops@example.com", "x\n@example.com"] }],
    ["an unpinned image", { images: { grafana: "grafana/grafana", prometheus: PROMETHEUS_IMAGE } }],
    [
      "a latest image",
      { images: { grafana: GRAFANA_IMAGE, prometheus: "prom/prometheus:latest" } },
    ],
    ["an http dashboard url", { dashboardUrl: "http://example.com/d.json" }],
    ["a dashboard url with a quote", { dashboardUrl: "https://example.com/d'.json" }],
    ["a short dashboard checksum", { dashboardSha256: "abc" }],
    ["a zero max connections", { maxDbConnections: 0 }],
    ["a disk outside /dev", { dataDiskDevice: "/tmp/disk" }],
    ["a bad retention", { prometheusRetention: { time: "90 days" } }],
  ])("when given %s, then it throws", (_name, extra) => {
    expect(() => renderCloudInit(hostInput(extra))).toThrow(GrafanaHostInputError);
  });

  it.each([
    ["a from-name with $", { fromName: "Alerts $__file{/etc/shadow}" }],
    ["a from-name with a newline", { fromName: "a\nGF_X=1" }],
    ["a bad port", { port: 70000 }],
    ["a bad host", { host: "smtp example.com" }],
    ["a bad from address", { fromAddress: "nope" }],
  ])("when the SMTP settings have %s, then it throws", (_name, extra) => {
    const base = hostInput().smtp;
    if (base === undefined) throw new Error("fixture has smtp");
    expect(() => renderCloudInit(hostInput({ smtp: { ...base, ...extra } }))).toThrow(
      GrafanaHostInputError,
    );
  });
});
