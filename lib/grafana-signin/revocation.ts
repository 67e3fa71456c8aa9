/**
 * Revoking every Grafana sign-in of an organization at once.
 *
 * A revocation is a moment per org, kept in the `gateway` table (`lib/gateway/state.ts`). The gateway consumer renders it into the nginx config as a per-host `map`
 * (`$supafana_not_before`), and the gateway then refuses every session cookie and ticket of that
 * org's hosts issued before it. It travels by the ordinary config push (seconds, coalesced), so
 * the per-request check stays local, and only the revoked org is affected: rotating the signing
 * keys would sign everybody out, every org, and is kept for a leaked key.
 */
import { audit } from "../audit.js";
import { requestGatewaySync } from "../gateway/consumer.js";
import { saveRevocation } from "../gateway/state.js";
import type { Services } from "../services.js";

export async function revokeGrafanaSessions(
  services: Services,
  actor: string,
  org: string,
): Promise<{ notBefore: Date }> {
  // Whole seconds, rounded up: tokens carry `iat` in seconds, and one issued in the same second
  // as the revocation (before it) must not survive it.
  const notBefore = Math.ceil(services.clock.now().getTime() / 1000);
  await saveRevocation(services, org, notBefore, actor);
  await audit(services, {
    actor,
    action: "org.grafana_sessions_revoked",
    target: org,
    details: { notBefore },
  });
  await requestGatewaySync(services, `grafana sign-ins of ${org} revoked`, { delayMs: 0 });
  return { notBefore: new Date(notBefore * 1000) };
}
