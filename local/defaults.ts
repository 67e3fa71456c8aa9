/** Defaults for running the app on a laptop and in tests. */

/** Local-only values. They protect nothing real: every one of them is public in this file. */
export const LOCAL = {
  subscriptionId: "00000000-0000-4000-8000-000000000000",
  supabaseClientId: "5b4f3c1e-0000-4000-8000-000000000001",
  supabaseClientSecret: "local-supabase-client-secret",
  loopsApiKey: "local-loops-key",
  stripeSecretKey: "sk_test_local",
  stripeWebhookSecret: "whsec_local_development_only",
  stripePriceId: "price_local_grafana",
  grafanaResourceGroup: "supafana-local-grafana",
  gatewayResourceGroup: "supafana-local",
  gatewayVmName: "supafana-local-gateway",
  dnsResourceGroup: "supafana-local",
  grafanaDomain: "grafana.supafana.localhost",
  adminKey: "local-admin-key",
  functionKey: "local-function-key",
} as const;

/** Local Grafana sign-in keys (32 bytes of 0x2b); the local gateway reads the same set. */
export function localGrafanaSessionKeys(): string {
  return JSON.stringify({ "local-1": Buffer.alloc(32, 43).toString("base64") });
}

export function localSecretKeys(): string {
  // A fixed local key (32 bytes of 0x2a), so sessions survive a restart of the local host.
  return JSON.stringify({ "local-1": Buffer.alloc(32, 42).toString("base64") });
}
