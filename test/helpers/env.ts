import { LOCAL, localGrafanaSessionKeys, localSecretKeys } from "../../local/defaults.js";

/** A complete, valid production-shaped environment (values are placeholders). */
export const validEnv = (): Record<string, string> => ({
  PUBLIC_BASE_URL: "https://app.example.com",
  SECRET_KEYS: localSecretKeys(),
  SESSION_SECRET: "x".repeat(40),
  StorageConnection: "UseDevelopmentStorage=true",
  ServiceBusConnection:
    "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=a;SharedAccessKey=b;UseDevelopmentEmulator=true",
  SUPABASE_CLIENT_ID: LOCAL.supabaseClientId,
  SUPABASE_CLIENT_SECRET: "s",
  LOOPS_API_KEY: "k",
  LOOPS_TX_VERIFICATION_CODE: "a",
  LOOPS_TX_INSTANCE_READY: "b",
  LOOPS_TX_TRIAL_ENDING: "c",
  LOOPS_TX_PAYMENT_FAILED: "d",
  LOOPS_TX_INSTANCE_DELETED: "e",
  LOOPS_TX_INSTANCE_FAILED: "f",
  STRIPE_SECRET_KEY: "sk_test_1",
  STRIPE_WEBHOOK_SECRET: "whsec_1",
  STRIPE_PRICE_ID: "price_1",
  AZURE_SUBSCRIPTION_ID: LOCAL.subscriptionId,
  GRAFANA_RESOURCE_GROUP: "rg-grafana",
  GRAFANA_TEMPLATE_SPEC_ID:
    "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Resources/templateSpecs/grafana-host/versions/1.0.0",
  GRAFANA_DOMAIN: "grafana.example.com",
  DNS_ZONE_NAME: "grafana.example.com",
  DNS_RESOURCE_GROUP: "rg-dns",
  GATEWAY_RESOURCE_GROUP: "rg",
  GATEWAY_VM_NAME: "gw",
  GATEWAY_PUBLIC_IP: "20.1.2.3",
  GATEWAY_PRIVATE_IP: "10.40.0.4",
  GRAFANA_SESSION_KEYS: localGrafanaSessionKeys(),
  GRAFANA_SUBNET_ID:
    "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/grafana",
  GRAFANA_ADMIN_SSH_PUBLIC_KEY: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample operator",
});
