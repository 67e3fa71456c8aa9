/**
 * Validation of everything that ends up in the Grafana host's files. Values go into YAML, env
 * files, systemd units and shell scripts, so anything that could break out of its place (line
 * breaks, quotes, shell metacharacters) is rejected rather than escaped.
 */
import { resolveAlertSettings, type AlertSettings } from "./alert-catalog.js";
import { GrafanaHostInputError, type GrafanaHostInput } from "./types.js";
import { GRAFANA_IMAGE, PROMETHEUS_IMAGE, SUPABASE_DASHBOARD_URL } from "./versions.js";

const REF_RE = /^[a-z]{20}$/;
const LABEL_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const EMAIL_RE =
  /^[A-Za-z0-9.!#%&*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;
const IMAGE_RE =
  /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;
const URL_RE =
  /^https:\/\/[A-Za-z0-9.-]+(?::[0-9]+)?\/[A-Za-z0-9._~%+\-/]*(?:\?[A-Za-z0-9._~%+\-=&]*)?$/;
const SHA256_RE = /^[a-f0-9]{64}$/;
const DEVICE_RE = /^\/dev\/[A-Za-z0-9._\-/]+$/;
const DURATION_RE = /^[1-9][0-9]*(?:y|w|d|h|m)$/;
const SIZE_RE = /^[1-9][0-9]*(?:KB|MB|GB|TB)$/;
// Printable ASCII, no spaces: what JWTs, `sb_secret_…` keys and generated passwords look like.
const SECRET_RE = /^[\x21-\x7e]{1,4096}$/;

function fail(message: string): never {
  throw new GrafanaHostInputError(message);
}

export function assertRef(ref: string): string {
  if (!REF_RE.test(ref)) fail(`invalid ref: ${JSON.stringify(ref)}`);
  return ref;
}

function normalizeDomain(domain: string): string {
  const d = domain.toLowerCase();
  const labels = d.split(".");
  if (d.length > 253 - 21 || labels.length < 2 || !labels.every((l) => LABEL_RE.test(l))) {
    fail(`invalid domain: ${JSON.stringify(domain)}`);
  }
  return d;
}

export function assertEmail(email: string): string {
  if (email.length > 254 || !EMAIL_RE.test(email))
    fail(`invalid email address: ${JSON.stringify(email)}`);
  return email;
}

function assertSecret(name: string, value: string): string {
  if (!SECRET_RE.test(value)) {
    fail(`${name} must be 1-4096 printable ASCII characters without spaces`);
  }
  return value;
}

/**
 * One line of text (display names, user names): no control characters, and no `$`, because
 * Grafana expands `$__file{…}` / `$__env{…}` in configuration values.
 */
function assertText(name: string, value: string): string {
  let bad = false;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0x20 || code === 0x7f || code === 0x24 /* $ */) bad = true;
  }
  if (bad || value.length === 0 || value.length > 200) {
    fail(`${name} must be one line of at most 200 characters, without control characters or $`);
  }
  return value;
}

function assertHost(name: string, host: string): string {
  const labels = host.toLowerCase().split(".");
  if (host.length > 253 || !labels.every((l) => LABEL_RE.test(l)))
    fail(`invalid ${name}: ${JSON.stringify(host)}`);
  return host.toLowerCase();
}

export interface ResolvedInput {
  ref: string;
  domain: string;
  serviceRoleKey: string;
  grafanaAdminPassword: string;
  gatewayPrivateIp: string;
  smtp:
    | {
        host: string;
        port: number;
        user: string;
        password: string;
        fromAddress: string;
        fromName: string;
      }
    | undefined;
  alertEmails: string[];
  maxDbConnections: number;
  /** Resolved per-instance alert settings, when the caller manages them. */
  alerts: AlertSettings | undefined;
  dashboardUrl: string;
  dashboardSha256: string | undefined;
  images: { grafana: string; prometheus: string };
  dataDiskDevice: string;
  retentionTime: string;
  retentionSize: string;
}

const OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
const IPV4_RE = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);

function assertIpv4(name: string, value: string): string {
  if (!IPV4_RE.test(value)) fail(`${name} must be a dotted-quad IPv4 address`);
  return value;
}

/** Validates the input and fills in the defaults. */
export function resolveInput(input: GrafanaHostInput): ResolvedInput {
  const ref = assertRef(input.ref);
  const domain = normalizeDomain(input.domain);
  const maxDbConnections = input.maxDbConnections ?? 60;
  if (!Number.isInteger(maxDbConnections) || maxDbConnections < 1 || maxDbConnections > 1_000_000) {
    fail(`maxDbConnections must be a positive integer, got ${maxDbConnections}`);
  }
  const images = input.images ?? { grafana: GRAFANA_IMAGE, prometheus: PROMETHEUS_IMAGE };
  for (const image of [images.grafana, images.prometheus]) {
    if (!IMAGE_RE.test(image) || !/[:@]/.test(image.slice(image.lastIndexOf("/")))) {
      fail(
        `image must be a pinned reference (name:tag or name@sha256:…), got ${JSON.stringify(image)}`,
      );
    }
    if (/:latest$/.test(image)) fail(`image must not use the latest tag: ${image}`);
  }
  const dashboardUrl = input.dashboardUrl ?? SUPABASE_DASHBOARD_URL;
  if (!URL_RE.test(dashboardUrl)) fail(`invalid dashboardUrl: ${JSON.stringify(dashboardUrl)}`);
  if (input.dashboardSha256 !== undefined && !SHA256_RE.test(input.dashboardSha256)) {
    fail("dashboardSha256 must be 64 lowercase hex characters");
  }
  const dataDiskDevice = input.dataDiskDevice ?? "/dev/disk/azure/scsi1/lun0";
  if (!DEVICE_RE.test(dataDiskDevice) || dataDiskDevice.split("/").includes("..")) {
    fail(`invalid dataDiskDevice: ${JSON.stringify(dataDiskDevice)}`);
  }
  const retentionTime = input.prometheusRetention?.time ?? "90d";
  const retentionSize = input.prometheusRetention?.size ?? "8GB";
  if (!DURATION_RE.test(retentionTime))
    fail(`invalid retention time: ${JSON.stringify(retentionTime)}`);
  if (!SIZE_RE.test(retentionSize))
    fail(`invalid retention size: ${JSON.stringify(retentionSize)}`);

  let smtp: ResolvedInput["smtp"];
  if (input.smtp !== undefined) {
    const s = input.smtp;
    if (!Number.isInteger(s.port) || s.port < 1 || s.port > 65535)
      fail(`invalid smtp port: ${s.port}`);
    smtp = {
      host: assertHost("smtp host", s.host),
      port: s.port,
      user: assertText("smtp user", s.user),
      password: assertSecret("smtp password", s.password),
      fromAddress: assertEmail(s.fromAddress),
      fromName: assertText("smtp fromName", s.fromName ?? `Supafana alerts for ${ref}`),
    };
  }
  const alertEmails = [...new Set(input.alertEmails.map(assertEmail))].sort();
  const alerts =
    input.alerts === undefined
      ? undefined
      : resolveAlertSettings(input.alerts, { maxConnections: maxDbConnections });

  return {
    ref,
    domain,
    serviceRoleKey: assertSecret("serviceRoleKey", input.serviceRoleKey),
    grafanaAdminPassword: assertSecret("grafanaAdminPassword", input.grafanaAdminPassword),
    gatewayPrivateIp: assertIpv4("gatewayPrivateIp", input.gatewayPrivateIp),
    smtp,
    alertEmails,
    maxDbConnections,
    alerts,
    dashboardUrl,
    dashboardSha256: input.dashboardSha256,
    images,
    dataDiskDevice,
    retentionTime,
    retentionSize,
  };
}
