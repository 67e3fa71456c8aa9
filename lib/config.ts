/**
 * Every setting the app reads, validated once with one zod schema.
 *
 * This is the only module that touches `process.env`. A bad or missing setting fails start-up
 * with one error that lists every bad key at once. Setting names are the app setting names in
 * `bicep/main.bicep` and the keys of `local.settings.example.json` (a test keeps them in step).
 */
import { z } from "zod";

const url = z.url({ protocol: /^https?$/ }).transform((u) => u.replace(/\/+$/, ""));
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const nonEmpty = z.string().trim().min(1);

/** A key set (`SECRET_KEYS`, `GRAFANA_SESSION_KEYS`): JSON `{ "<kid>": "<base64 or base64url of 32 random bytes>" }`. */
const keyMap = (kidRe: RegExp) =>
  z.string().transform((raw, ctx) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      ctx.addIssue({ code: "custom", message: "must be a JSON object of kid -> base64 key" });
      return z.NEVER;
    }
    const shape = z.record(z.string().regex(kidRe), z.string()).safeParse(parsed);
    if (!shape.success || Object.keys(shape.data).length === 0) {
      ctx.addIssue({
        code: "custom",
        message: "must be a non-empty JSON object of kid -> base64 key",
      });
      return z.NEVER;
    }
    const keys = new Map<string, Uint8Array>();
    for (const [kid, b64] of Object.entries(shape.data)) {
      const bytes = Buffer.from(b64, "base64");
      if (bytes.length !== 32) {
        ctx.addIssue({ code: "custom", message: `key "${kid}" must decode to 32 bytes` });
        return z.NEVER;
      }
      keys.set(kid, new Uint8Array(bytes));
    }
    // The greatest kid (string order) encrypts; every kid decrypts. Use sortable kids, e.g. "2026-11".
    const current = [...keys.keys()].sort().at(-1) ?? "";
    return { current, keys };
  });
const secretKeys = keyMap(/^[\w.-]{1,64}$/);

/** Service Bus: a connection string locally, or an identity-based namespace in Azure. */
const serviceBusFields = {
  ServiceBusConnection: z.string().optional(),
  ServiceBusConnection__fullyQualifiedNamespace: z.string().optional(),
};
/** Table storage: a connection string locally, or an identity-based service URI in Azure. */
const storageFields = {
  StorageConnection: z.string().optional(),
  StorageConnection__tableServiceUri: z.string().optional(),
  /** Prefix of every table name, so environments can share one storage account. */
  TABLE_PREFIX: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9]{0,15}$/, "letters and digits, starting with a letter")
    .optional(),
};

export const configSchema = z.object({
  /** The SPA's origin (same origin as the API): cookies, CSRF checks, redirects. */
  PUBLIC_BASE_URL: url,
  SECRET_KEYS: secretKeys,
  SESSION_SECRET: z.string().min(32, "must be at least 32 characters"),

  ...storageFields,
  ...serviceBusFields,
  PROVISIONING_QUEUE: nonEmpty.default("provisioning"),
  GATEWAY_QUEUE: nonEmpty.default("gateway"),

  SUPABASE_API_URL: url.default("https://api.supabase.com"),
  SUPABASE_CLIENT_ID: nonEmpty,
  SUPABASE_CLIENT_SECRET: nonEmpty,

  LOOPS_API_URL: url.default("https://app.loops.so/api"),
  LOOPS_API_KEY: nonEmpty,
  LOOPS_TX_VERIFICATION_CODE: nonEmpty,
  LOOPS_TX_INSTANCE_READY: nonEmpty,
  LOOPS_TX_TRIAL_ENDING: nonEmpty,
  LOOPS_TX_PAYMENT_FAILED: nonEmpty,
  LOOPS_TX_INSTANCE_DELETED: nonEmpty,
  /** "Your Grafana host could not be replaced" (upgrade or heal failed); unset: logged only. */
  LOOPS_TX_INSTANCE_FAILED: z.string().trim().optional(),

  /** Unset means the real Stripe API. */
  STRIPE_API_URL: url.optional(),
  STRIPE_SECRET_KEY: nonEmpty,
  STRIPE_WEBHOOK_SECRET: nonEmpty,
  STRIPE_PRICE_ID: nonEmpty,
  TRIAL_HOURS: int(1, 24 * 60).default(72),
  BILLING_GRACE_HOURS: int(0, 24 * 60).default(72),

  ARM_ENDPOINT: url.default("https://management.azure.com"),
  AZURE_SUBSCRIPTION_ID: z.uuid(),
  /** Client id of a user-assigned identity; unset uses the system-assigned identity. */
  AZURE_CLIENT_ID: z.string().optional(),
  GRAFANA_RESOURCE_GROUP: nonEmpty,
  GRAFANA_TEMPLATE_SPEC_ID: z
    .string()
    .regex(
      /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Resources\/templateSpecs\/[^/]+\/versions\/[^/]+$/i,
      "must be a template spec version resource id",
    ),
  GRAFANA_DOMAIN: z
    .string()
    .regex(/^(?=.{1,200}$)([a-z0-9-]+\.)+[a-z]{2,}$/, "must be a lower-case DNS name"),
  GRAFANA_VM_SIZE: nonEmpty.default("Standard_B2s"),
  /** Resource id of the isolated subnet Grafana hosts join. */
  GRAFANA_SUBNET_ID: z
    .string()
    .regex(
      /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Network\/virtualNetworks\/[^/]+\/subnets\/[^/]+$/i,
      "must be a subnet resource id",
    ),
  /** Break-glass SSH public key for Grafana hosts (password login is disabled). */
  GRAFANA_ADMIN_SSH_PUBLIC_KEY: z
    .string()
    .regex(/^(ssh-(rsa|ed25519)|ecdsa-sha2-\S+) \S+/, "must be an OpenSSH public key"),
  DNS_ZONE_NAME: nonEmpty,
  DNS_RESOURCE_GROUP: nonEmpty,
  GATEWAY_RESOURCE_GROUP: nonEmpty,
  GATEWAY_VM_NAME: nonEmpty,
  GATEWAY_PUBLIC_IP: z.ipv4(),
  /** The gateway's VNet address: the only address Grafana hosts take auth-proxy headers from. */
  GATEWAY_PRIVATE_IP: z.ipv4(),
  /**
   * Grafana sign-in keys, shared with the gateway VM (same format as SECRET_KEYS; kids of
   * letters, digits, `_` and `-`): the greatest kid signs tickets, every kid verifies.
   */
  GRAFANA_SESSION_KEYS: keyMap(/^[A-Za-z0-9_-]{1,64}$/),

  /** SMTP relay used by each Grafana for alert e-mail (optional). */
  SMTP_HOST: z.string().optional(),
  SMTP_PORT: int(1, 65535).default(587),
  SMTP_USER: z.string().optional(),
  SMTP_PASSWORD: z.string().optional(),
  SMTP_FROM_ADDRESS: z.email().optional(),

  /** Provisioning budgets. */
  PROVISION_POLL_SECONDS: int(1, 600).default(15),
  PROVISION_BUDGET_MINUTES: int(1, 24 * 60).default(45),
  PROVISION_MAX_ATTEMPTS: int(1, 1000).default(40),
  /** Days a daily snapshot of a data disk is kept (the newest of a project is always kept). */
  SNAPSHOT_RETENTION_DAYS: int(1, 90).default(7),
  /** Host upgrades a rollout runs at once (at most this many instances unroutable). */
  UPGRADE_BATCH_SIZE: int(1, 100).default(5),
  /** Failed health probes in a row (one per reconciler run) before a Running host is replaced. */
  HEAL_AFTER_FAILED_PROBES: int(2, 100).default(3),
  /** Minutes a Running host must fail its health probes before it is replaced. */
  HEAL_AFTER_MINUTES: int(1, 24 * 60).default(10),

  /** Each instance's dedicated Supabase secret key is replaced this often (days). */
  KEY_ROTATION_DAYS: int(1, 3650).default(30),
});

export type Config = z.output<typeof configSchema>;

/** Rules across settings; checked on the raw values so they are reported with everything else. */
function crossChecks(env: Record<string, string>): Array<{ key: string; message: string }> {
  const problems: Array<{ key: string; message: string }> = [];
  if (!env.StorageConnection && !env.StorageConnection__tableServiceUri) {
    problems.push({
      key: "StorageConnection",
      message: "set StorageConnection or StorageConnection__tableServiceUri",
    });
  }
  if (!env.ServiceBusConnection && !env.ServiceBusConnection__fullyQualifiedNamespace) {
    problems.push({
      key: "ServiceBusConnection",
      message: "set ServiceBusConnection or ServiceBusConnection__fullyQualifiedNamespace",
    });
  }
  const base = env.PUBLIC_BASE_URL ?? "";
  if (base.startsWith("http:") && !/^http:\/\/(localhost|127\.0\.0\.1)(:\d+)?(\/|$)/.test(base)) {
    problems.push({ key: "PUBLIC_BASE_URL", message: "must be https outside local development" });
  }
  return problems;
}

/** Every setting name the app reads (for the Bicep and local.settings contract tests). */
export const settingNames: readonly string[] = Object.keys(configSchema.shape);

export class ConfigError extends Error {
  constructor(readonly problems: ReadonlyArray<{ key: string; message: string }>) {
    super(
      `Invalid configuration (${problems.length} setting${problems.length === 1 ? "" : "s"}):\n` +
        problems.map((p) => `  - ${p.key}: ${p.message}`).join("\n"),
    );
    this.name = "ConfigError";
  }
}

/** Validates an environment. Never logs values: only keys and reasons. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  // Empty strings mean "unset" (as app settings often are).
  const cleaned = Object.fromEntries(
    Object.entries(env).filter(([, v]) => v !== undefined && v.trim() !== ""),
  );
  const result = configSchema.safeParse(cleaned);
  const extra = crossChecks(cleaned as Record<string, string>);
  if (result.success && extra.length === 0) return result.data;
  const issues = result.success ? [] : result.error.issues;
  const problems = issues.map((i) => ({
    key: i.path.map(String).join(".") || "(root)",
    message:
      i.code === "invalid_type" && i.message.endsWith("received undefined")
        ? "is required"
        : i.message,
  }));
  problems.push(...extra);
  const seen = new Set<string>();
  throw new ConfigError(
    problems.filter((p) => (seen.has(p.key) ? false : (seen.add(p.key), true))),
  );
}

let cached: Config | undefined;

/** The process's configuration, validated on first use. */
export function getConfig(): Config {
  cached ??= loadConfig(process.env);
  return cached;
}
