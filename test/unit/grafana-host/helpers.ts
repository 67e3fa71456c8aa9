import { parse } from "yaml";

import type { GrafanaHostInput } from "../../../lib/grafana-host/types.js";

export const REF = "abcdefghijklmnopqrst";

/** Secrets full of characters that would break shells, YAML or env files if they leaked in raw. */
export const SECRETS = {
  serviceRoleKey: "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.$ig'n\"atu`re",
  grafanaAdminPassword: "Adm1n$'\"`;|&-pw",
  smtpPassword: "smtp-$(reboot)-'pw'",
};

export function hostInput(extra: Partial<GrafanaHostInput> = {}): GrafanaHostInput {
  return {
    ref: REF,
    domain: "grafana.example.com",
    serviceRoleKey: SECRETS.serviceRoleKey,
    grafanaAdminPassword: SECRETS.grafanaAdminPassword,
    gatewayPrivateIp: "10.40.0.4",
    smtp: {
      host: "smtp.example.com",
      port: 587,
      user: "apikey",
      password: SECRETS.smtpPassword,
      fromAddress: "alerts@example.com",
    },
    alertEmails: ["ops@example.com", "dev@example.com"],
    ...extra,
  };
}

export interface WriteFileEntry {
  path: string;
  content: string;
  owner?: string;
  permissions?: string;
  encoding?: string;
}

export interface CloudConfig {
  disk_setup: Record<string, { table_type: string; layout: boolean; overwrite: boolean }>;
  fs_setup: {
    label: string;
    filesystem: string;
    device: string;
    partition: string;
    overwrite: boolean;
  }[];
  mounts: string[][];
  packages: string[];
  package_update: boolean;
  write_files: WriteFileEntry[];
  runcmd: (string | string[])[];
}

export function parseCloudConfig(text: string): CloudConfig {
  if (!text.startsWith("#cloud-config\n")) throw new Error("missing #cloud-config header");
  return parse(text) as CloudConfig;
}

/** The decoded content of a write_files entry. */
export function fileContent(config: CloudConfig, path: string): string {
  const entry = config.write_files.find((f) => f.path === path);
  if (entry === undefined) throw new Error(`no write_files entry for ${path}`);
  return entry.encoding === "b64"
    ? Buffer.from(entry.content, "base64").toString("utf8")
    : entry.content;
}

/** `ExecStart=` of a unit, with backslash continuations joined. */
export function execStart(unit: string): string {
  const joined = unit.replace(/\\\n\s*/g, "");
  const line = joined.split("\n").find((l) => l.startsWith("ExecStart="));
  if (line === undefined) throw new Error("no ExecStart");
  return line.slice("ExecStart=".length);
}
