/**
 * Managed alerts figures, through the shipped bundle (`dist/`) served by the local function host
 * with the provisioning queue runner on the Service Bus emulator, against the ARM simulator and
 * the sandbox Grafana hosts:
 * - a burst of 50 alert changes across 10 running instances (5 each, all at once): run commands
 *   per instance (target ≤ 1 per instance per burst);
 * - time from a PATCH to the host having applied it (GET …/grafana shows applied = desired), p50
 *   over 10 changes one after another. The change is scheduled COALESCE_MS out on purpose.
 */
import { COALESCE_MS } from "../../lib/alerts/apply.js";
import { decodeAlertingPushScript } from "../../lib/grafana-host/alerting-push.js";
import { listInstances } from "../../lib/instances/store.js";
import { startPlatform } from "../../local/platform.js";
import { connectOrg } from "../helpers/org.js";
import { fmt, percentile } from "./load.js";
import { startBenchApp } from "./setup.js";

const INSTANCES = 10;
const CHANGES_PER_INSTANCE = 5;
const TIMEOUT_MS = 3 * 60_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function benchAlerts(): Promise<Record<string, string | number>> {
  const platform = await startPlatform({
    deploymentDelayMs: 0,
    env: {
      SMTP_HOST: "smtp.example.com",
      SMTP_USER: "apikey",
      SMTP_PASSWORD: "bench-smtp-password",
      SMTP_FROM_ADDRESS: "alerts@example.com",
    },
  });
  const local = await startBenchApp(platform);
  try {
    const { arm, supabase } = platform;
    if (!arm || !supabase) throw new Error("the simulators did not start");
    const org = await connectOrg(platform.services, supabase, { projects: INSTANCES });
    const origin = new URL(platform.config.PUBLIC_BASE_URL).origin;
    const headers = {
      cookie: `${org.cookie.name}=${org.cookie.value}`,
      origin,
      "content-type": "application/json",
    };
    const api = (path: string, init: RequestInit = {}) =>
      fetch(`${local.host.url}/api${path}`, { ...init, headers });

    for (const ref of org.refs) {
      const res = await api(`/projects/${ref}/grafana`, { method: "PUT" });
      if (res.status !== 202) throw new Error(`provision ${ref}: ${res.status}`);
    }
    const started = performance.now();
    for (;;) {
      const instances = await listInstances(platform.services, org.slug);
      if (instances.filter((i) => i.state === "Running").length === INSTANCES) break;
      if (instances.some((i) => i.state === "Failed")) throw new Error("an instance failed");
      if (performance.now() - started > TIMEOUT_MS) throw new Error("instances not Running");
      await sleep(100);
    }

    const pushesPerRef = () => {
      const out = new Map<string, number>();
      for (const r of arm.runCommands()) {
        if (!decodeAlertingPushScript(r.script)) continue;
        const ref = r.vmName.replace(/^grafana-/, "");
        out.set(ref, (out.get(ref) ?? 0) + 1);
      }
      return out;
    };
    const status = async (ref: string) => {
      const res = await api(`/projects/${ref}/grafana`);
      const body = (await res.json()) as {
        configVersion?: { desired: number; applied: number | null };
      };
      return body.configVersion ?? { desired: 0, applied: null };
    };
    const settled = async (ref: string) => {
      const v = await status(ref);
      return v.applied === v.desired;
    };

    // The burst: 5 changes to each of 10 instances, all at once.
    const before = pushesPerRef();
    const burstStart = performance.now();
    const answers = await Promise.all(
      org.refs.flatMap((ref) =>
        Array.from({ length: CHANGES_PER_INSTANCE }, (_, k) =>
          api(`/projects/${ref}/grafana/alerts`, {
            method: "PATCH",
            body: JSON.stringify({ alerts: { "high-cpu": { params: { threshold: 60 + k } } } }),
          }),
        ),
      ),
    );
    const bad = answers.filter((r) => r.status !== 202).length;
    if (bad > 0) throw new Error(`${bad} PATCHes were not accepted`);
    for (;;) {
      const done = await Promise.all(org.refs.map(settled));
      if (done.every(Boolean)) break;
      if (performance.now() - burstStart > TIMEOUT_MS) throw new Error("burst did not settle");
      await sleep(50);
    }
    const burstMs = performance.now() - burstStart;
    const after = pushesPerRef();
    const perInstance = org.refs.map((ref) => (after.get(ref) ?? 0) - (before.get(ref) ?? 0));

    // PATCH → applied, one change at a time.
    const latencies: number[] = [];
    for (let i = 0; i < 10; i++) {
      const ref = org.refs[i % INSTANCES] ?? "";
      const t = performance.now();
      const res = await api(`/projects/${ref}/grafana/alerts`, {
        method: "PATCH",
        body: JSON.stringify({ alerts: { "disk-full": { params: { threshold: 80 + i } } } }),
      });
      if (res.status !== 202) throw new Error(`PATCH ${res.status}`);
      while (!(await settled(ref))) {
        if (performance.now() - t > TIMEOUT_MS) throw new Error("change not applied");
        await sleep(20);
      }
      latencies.push(performance.now() - t);
    }
    latencies.sort((a, b) => a - b);

    return {
      [`burst: ${INSTANCES * CHANGES_PER_INSTANCE} changes across ${INSTANCES} instances`]: `${fmt(burstMs)} until all applied`,
      "run commands per instance in the burst (max / total; target ≤ 1 each)": `${Math.max(...perInstance)} / ${perInstance.reduce((a, b) => a + b, 0)}`,
      "PATCH → applied on the host, p50 (sandbox)": fmt(percentile(latencies, 50)),
      "PATCH → applied on the host, max of 10": fmt(latencies.at(-1) ?? 0),
      "of which the deliberate coalescing delay": fmt(COALESCE_MS),
    };
  } finally {
    await local.close();
    await platform.close();
  }
}
