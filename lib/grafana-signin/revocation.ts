/**
 * Revoking every Grafana sign-in of an organization at once.
 *
 * A revocation is a moment per org, kept in the `gateway` table (partition `signin-revocation`,
 * row = org). The gateway consumer renders it into the nginx config as a per-host `map`
 * (`$supafana_not_before`), and the gateway then refuses every session cookie and ticket of that
 * org's hosts issued before it. It travels by the ordinary config push (seconds, coalesced), so
 * the per-request check stays local, and only the revoked org is affected: rotating the signing
 * keys would sign everybody out, every org, and is kept for a leaked key.
 */
import { audit } from "../audit.js";
import { requestGatewaySync } from "../gateway/consumer.js";
import type { Services } from "../services.js";

const PK = "signin-revocation";

interface RevocationEntity {
  partitionKey: string;
  rowKey: string;
  notBefore: number;
  actor: string;
}

/** Per org: sign-ins issued before this moment (epoch seconds) are refused. */
export async function readRevocations(services: Services): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const rows = services.tables.client("gateway").listEntities<RevocationEntity>({
    queryOptions: { filter: `PartitionKey eq '${PK}'` },
  });
  for await (const row of rows) {
    if (typeof row.notBefore === "number" && row.rowKey) out.set(row.rowKey, row.notBefore);
  }
  return out;
}

export async function revokeGrafanaSessions(
  services: Services,
  actor: string,
  org: string,
): Promise<{ notBefore: Date }> {
  // Whole seconds, rounded up: tokens carry `iat` in seconds, and one issued in the same second
  // as the revocation (before it) must not survive it.
  const notBefore = Math.ceil(services.clock.now().getTime() / 1000);
  await services.tables
    .client("gateway")
    .upsertEntity<RevocationEntity>(
      { partitionKey: PK, rowKey: org, notBefore, actor: actor.slice(0, 200) },
      "Replace",
    );
  await audit(services, {
    actor,
    action: "org.grafana_sessions_revoked",
    target: org,
    details: { notBefore },
  });
  await requestGatewaySync(services, `grafana sign-ins of ${org} revoked`, { delayMs: 0 });
  return { notBefore: new Date(notBefore * 1000) };
}
