/**
 * Talking to a project's Grafana through the gateway, over the Grafana-hosts port
 * (`services.ports.grafanaHosts`): the readiness probe and the admin password change.
 */
import { randomBytes } from "node:crypto";

import { requestStatus } from "../grafana-host/http.js";
import { decryptSecret, encryptSecret } from "../secrets.js";
import type { Services } from "../services.js";

const ADMIN_TIMEOUT_MS = 10_000;

export const instanceUrl = (services: Services, ref: string) =>
  `https://${ref}.${services.config.GRAFANA_DOMAIN}`;
export const healthUrl = (services: Services, ref: string) =>
  `${instanceUrl(services, ref)}/api/health`;

/** HTTP status of `GET url` (0 when unreachable or timed out). */
export function probe(services: Services, url: string): Promise<number> {
  return services.ports.grafanaHosts.probe(url);
}

/** 24+ characters from a URL-safe alphabet (about 190 bits). */
export function generatePassword(): string {
  return randomBytes(24).toString("base64url") + "Aa1";
}

export const passwordContext = (org: string, ref: string) => `grafana:${org}:${ref}`;

export const encryptPassword = (services: Services, org: string, ref: string, password: string) =>
  encryptSecret(services.config.SECRET_KEYS, password, passwordContext(org, ref));

export const decryptPassword = (services: Services, org: string, ref: string, secret: string) =>
  decryptSecret(services.config.SECRET_KEYS, secret, passwordContext(org, ref));

/**
 * Changes the Grafana admin password (as the admin, with the current password).
 * Returns the HTTP status Grafana answered (0 when unreachable).
 */
export async function changeAdminPassword(
  services: Services,
  ref: string,
  current: string,
  next: string,
): Promise<number> {
  return requestStatus(
    services.ports.grafanaHosts.fetch,
    `${instanceUrl(services, ref)}/api/user/password`,
    {
      method: "PUT",
      headers: {
        authorization: `Basic ${Buffer.from(`admin:${current}`).toString("base64")}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ oldPassword: current, newPassword: next, confirmNew: next }),
      timeoutMs: ADMIN_TIMEOUT_MS,
    },
  );
}
