import type { AlertSettingsPatch } from "./alert-catalog.js";

export interface SmtpSettings {
  host: string;
  port: number;
  user: string;
  password: string;
  fromAddress: string;
  fromName?: string;
}

export interface GrafanaHostInput {
  /** Supabase project ref (20 lowercase letters). */
  ref: string;
  /** GRAFANA_DOMAIN; the instance is served at `https://<ref>.<domain>`. */
  domain: string;
  /** Supabase service_role (or `sb_secret_…`) key used to scrape the metrics endpoint. */
  serviceRoleKey: string;
  /** Break-glass only: members sign in through the gateway (auth proxy) and never see it. */
  grafanaAdminPassword: string;
  /**
   * The gateway's private IPv4 address (GATEWAY_PRIVATE_IP): Grafana takes the auth-proxy
   * identity headers from this address only.
   */
  gatewayPrivateIp: string;
  /** When set (and alertEmails is not empty), alerts are emailed through this server. */
  smtp?: SmtpSettings;
  alertEmails: string[];
  /**
   * Per-instance alert settings (which default alerts are on, thresholds, `for`, connection
   * limit), any subset of the catalog (`alert-catalog.ts`); absent: the defaults. When given,
   * the rendered provisioning also removes the e-mail contact point if there is no address.
   */
  alerts?: AlertSettingsPatch;
  /** The project's max client connections, for the saturation alert; default 60. */
  maxDbConnections?: number;
  /** Pinned, versioned URL of the Supabase dashboard JSON. */
  dashboardUrl?: string;
  /** Optional sha256 (hex) of the dashboard file; the host refuses a file that does not match. */
  dashboardSha256?: string;
  images?: { grafana: string; prometheus: string };
  /** Block device of the data disk; default the Azure LUN 0 data disk. */
  dataDiskDevice?: string;
  /** Prometheus retention; default 90d and 8GB (half of a 16 GB data disk). */
  prometheusRetention?: { time?: string; size?: string };
}

export class GrafanaHostInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GrafanaHostInputError";
  }
}
