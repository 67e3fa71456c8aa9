/**
 * `npm run bench`: measures the targets the issues set and prints the figures.
 * Each section starts its own local platform (in-memory Azurite, emulator, simulators).
 */
import { benchAlerts } from "./alerts.js";
import { benchConnect } from "./connect.js";
import { benchGatewaySignin } from "./gateway-signin.js";
import { benchPlatform } from "./platform.js";
import { benchProvisioning } from "./provisioning.js";
import { benchReconciler } from "./reconciler.js";
import { benchWeb } from "./web.js";
import { benchWebhooks } from "./webhooks.js";

type Section = [string, () => Promise<Record<string, string | number>>];

const sections: Section[] = [
  ["Platform", benchPlatform],
  ["Connect", benchConnect],
  ["Billing webhooks", () => benchWebhooks()],
  ["Provisioning", () => benchProvisioning()],
  ["Reconciler", benchReconciler],
  ["Web app", benchWeb],
  ["Grafana sign-in", benchGatewaySignin],
  ["Managed alerts", benchAlerts],
];

const only = process.argv.slice(2).map((s) => s.toLowerCase());
let failed = false;
for (const [name, run] of sections) {
  if (only.length && !only.some((o) => name.toLowerCase().includes(o))) continue;
  console.log(`\n== ${name}`);
  try {
    const figures = await run();
    const width = Math.max(...Object.keys(figures).map((k) => k.length));
    for (const [k, v] of Object.entries(figures)) console.log(`  ${k.padEnd(width)}  ${v}`);
  } catch (err) {
    failed = true;
    console.error(`  failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
}
process.exit(failed ? 1 : 0);
