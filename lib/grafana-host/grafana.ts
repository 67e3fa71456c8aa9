/**
 * Grafana's configuration on the host: environment variables and the datasource and dashboard
 * provisioning.
 *
 * Secrets are referenced as `$__file{<path>}`: Grafana expands that itself after applying
 * environment overrides, so the password is read straight from the mounted file and never sits
 * in any environment (the image's `GF_*__FILE` convention would export the value into the
 * Grafana process environment instead).
 */
import { stringify } from "yaml";

import type { ResolvedInput } from "./validate.js";
import { PROMETHEUS_DATASOURCE_UID } from "./versions.js";

/** Grafana listens here; the gateway proxies `<ref>.<domain>` to `<vm-ip>:3000`. */
export const GRAFANA_PORT = 3000;
/** Health endpoint the gateway/provisioner probes: `GET http://<vm-ip>:3000/api/health`. */
export const GRAFANA_HEALTH_PATH = "/api/health";

/** Paths inside the Grafana container. */
export const GRAFANA_CONTAINER = {
  adminPasswordFile: "/run/secrets/grafana-admin-password",
  smtpPasswordFile: "/run/secrets/smtp-password",
  dashboardsDir: "/var/lib/supafana-dashboards",
  dashboardFile: "/var/lib/supafana-dashboards/supabase.json",
  provisioningDir: "/etc/grafana/provisioning",
  dataDir: "/var/lib/grafana",
} as const;

/** Prometheus listens on the host's loopback only (both containers use host networking). */
const PROMETHEUS_LOCAL_URL = "http://127.0.0.1:9090";

/** A Grafana configuration value read from a file (whitespace trimmed). */
function fileRef(path: string): string {
  return `$__file{${path}}`;
}

/** `KEY=value` lines for `docker run --env-file` (values are taken literally, one per line). */
export function renderGrafanaEnv(input: ResolvedInput): string {
  const host = `${input.ref}.${input.domain}`;
  const env: [string, string][] = [
    ["GF_SERVER_HTTP_ADDR", "0.0.0.0"],
    ["GF_SERVER_HTTP_PORT", String(GRAFANA_PORT)],
    ["GF_SERVER_DOMAIN", host],
    ["GF_SERVER_ROOT_URL", `https://${host}`],
    ["GF_SERVER_ENABLE_GZIP", "true"],
    ["GF_PATHS_DATA", GRAFANA_CONTAINER.dataDir],
    ["GF_PATHS_PROVISIONING", GRAFANA_CONTAINER.provisioningDir],
    ["GF_SECURITY_ADMIN_USER", "admin"],
    ["GF_SECURITY_ADMIN_PASSWORD", fileRef(GRAFANA_CONTAINER.adminPasswordFile)],
    ["GF_SECURITY_COOKIE_SECURE", "true"],
    ["GF_SECURITY_DISABLE_GRAVATAR", "true"],
    ["GF_AUTH_ANONYMOUS_ENABLED", "false"],
    // Sign-in: the gateway is the identity provider. It verifies the member's session and sends
    // who they are in these headers; Grafana trusts them from the gateway's address only, creates
    // the user on first sight and syncs the role from the header (re-read at most a minute
    // later). No login form: the admin password is break-glass, used on the VM itself.
    ["GF_AUTH_PROXY_ENABLED", "true"],
    ["GF_AUTH_PROXY_HEADER_NAME", "X-WEBAUTH-USER"],
    ["GF_AUTH_PROXY_HEADER_PROPERTY", "username"],
    ["GF_AUTH_PROXY_HEADERS", "Email:X-WEBAUTH-EMAIL Name:X-WEBAUTH-NAME Role:X-WEBAUTH-ROLE"],
    ["GF_AUTH_PROXY_AUTO_SIGN_UP", "true"],
    ["GF_AUTH_PROXY_WHITELIST", input.gatewayPrivateIp],
    ["GF_AUTH_PROXY_SYNC_TTL", "1"],
    ["GF_AUTH_PROXY_ENABLE_LOGIN_TOKEN", "false"],
    ["GF_AUTH_DISABLE_LOGIN_FORM", "true"],
    ["GF_AUTH_DISABLE_SIGNOUT_MENU", "true"],
    ["GF_USERS_AUTO_ASSIGN_ORG", "true"],
    ["GF_USERS_AUTO_ASSIGN_ORG_ROLE", "Viewer"],
    ["GF_USERS_ALLOW_SIGN_UP", "false"],
    ["GF_USERS_ALLOW_ORG_CREATE", "false"],
    ["GF_ANALYTICS_REPORTING_ENABLED", "false"],
    ["GF_ANALYTICS_CHECK_FOR_UPDATES", "false"],
    ["GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES", "false"],
    ["GF_UNIFIED_ALERTING_ENABLED", "true"],
    ["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH", GRAFANA_CONTAINER.dashboardFile],
    ["GF_LOG_MODE", "console"],
  ];
  if (input.smtp !== undefined) {
    env.push(
      ["GF_SMTP_ENABLED", "true"],
      ["GF_SMTP_HOST", `${input.smtp.host}:${input.smtp.port}`],
      ["GF_SMTP_USER", input.smtp.user],
      ["GF_SMTP_PASSWORD", fileRef(GRAFANA_CONTAINER.smtpPasswordFile)],
      ["GF_SMTP_FROM_ADDRESS", input.smtp.fromAddress],
      ["GF_SMTP_FROM_NAME", input.smtp.fromName],
    );
  }
  return env.map(([k, v]) => `${k}=${v}\n`).join("");
}

export function renderDatasourceProvisioning(prometheusVersion: string): string {
  return stringify(
    {
      apiVersion: 1,
      datasources: [
        {
          name: "prometheus",
          uid: PROMETHEUS_DATASOURCE_UID,
          type: "prometheus",
          access: "proxy",
          url: PROMETHEUS_LOCAL_URL,
          isDefault: true,
          editable: false,
          jsonData: {
            timeInterval: "60s",
            httpMethod: "POST",
            prometheusType: "Prometheus",
            prometheusVersion,
          },
        },
      ],
    },
    { lineWidth: 0 },
  );
}

export function renderDashboardProvisioning(): string {
  return stringify(
    {
      apiVersion: 1,
      providers: [
        {
          name: "supabase",
          orgId: 1,
          folder: "",
          type: "file",
          disableDeletion: true,
          allowUiUpdates: false,
          updateIntervalSeconds: 60,
          options: { path: GRAFANA_CONTAINER.dashboardsDir, foldersFromFilesStructure: false },
        },
      ],
    },
    { lineWidth: 0 },
  );
}
