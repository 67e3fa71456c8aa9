/**
 * Provisioning figures: 200 concurrent PUTs for 200 projects (10 orgs), through the local
 * function host (HTTP routes + the provisioning and gateway queue runners on the Service Bus
 * emulator) against the ARM simulator with instant deployments. Reports the time until every
 * instance is Running, ARM writes per provision, duplicate deployments and gateway pushes; and
 * the time to render the gateway config for 5,000 instances.
 *
 * The Supabase simulator runs with a raised rate limit: the real Management API allows 120
 * calls a minute per grant, and each provision fetches the project's service key once, so with
 * the real limit a burst of 200 is bound to at least 200 / 120 minutes by Supabase alone (the
 * pipeline then backs off and retries; the figure below reports those calls).
 */
import { renderGatewayConfig } from "../../lib/gateway/nginx.js";
import { GATEWAY_PATHS } from "../../lib/gateway/host.js";
import { isRoutable } from "../../lib/instances/lifecycle.js";
import { listInstances } from "../../lib/instances/store.js";
import { LOCAL } from "../../local/defaults.js";
import { startPlatform } from "../../local/platform.js";
import { connectOrg } from "../helpers/org.js";
import { fmt } from "./load.js";
import { startBenchApp, startBurstSupabase, supabaseEnv } from "./setup.js";

const PROJECTS = 200;
const ORGS = 10;
const TIMEOUT_MS = 5 * 60_000;

function renderFigures(): Record<string, string> {
  const letters = (n: number) =>
    Array.from({ length: 4 }, (_, k) =>
      String.fromCharCode(97 + (Math.floor(n / 26 ** k) % 26)),
    ).join("");
  const routes = Array.from({ length: 5000 }, (_, i) => ({
    ref: `benchbenchbenchb${letters(i)}`,
    privateIp: `10.${20 + Math.floor(i / 62500)}.${Math.floor(i / 250) % 250}.${(i % 250) + 4}`,
  }));
  const opts = {
    domain: "grafana.example.com",
    certificatePath: GATEWAY_PATHS.certificate,
    certificateKeyPath: GATEWAY_PATHS.certificateKey,
  };
  renderGatewayConfig(routes, opts); // warm-up
  const runs: number[] = [];
  let bytes = 0;
  for (let i = 0; i < 10; i++) {
    const t = performance.now();
    bytes = renderGatewayConfig(routes, opts).length;
    runs.push(performance.now() - t);
  }
  runs.sort((a, b) => a - b);
  return {
    "gateway config render, 5,000 instances (median of 10)": `${fmt(runs[5] ?? 0)} (${Math.round(bytes / 1024)} KiB)`,
  };
}

const UPGRADES = 100;
const UPGRADE_BATCH = 10;

/**
 * A rollout of a new host version over 100 of the Running instances, in batches of 10, through
 * the operators' route: time to done, ARM writes per instance, and the most instances that were
 * unroutable at once (sampled from the instances table every 20 ms while it ran).
 */
async function upgradeFigures(
  hostUrl: string,
  platform: Awaited<ReturnType<typeof startPlatform>>,
  orgs: string[],
): Promise<Record<string, string | number>> {
  const arm = platform.arm;
  if (!arm) throw new Error("the ARM simulator did not start");
  const services = platform.services;
  const headers = {
    "x-functions-key": LOCAL.adminKey,
    "x-ops-actor": "bench",
    "content-type": "application/json",
  };
  arm.resetRequests();
  const started = performance.now();
  const res = await fetch(`${hostUrl}/api/ops/instances/upgrade`, {
    method: "POST",
    headers,
    body: JSON.stringify({ templateSpecVersion: "2.0.0", max: UPGRADES, batch: UPGRADE_BATCH }),
  });
  if (res.status !== 202) throw new Error(`upgrade: HTTP ${res.status} ${await res.text()}`);
  let maxUnroutable = 0;
  let progress: Record<string, unknown> = {};
  while (performance.now() - started < TIMEOUT_MS) {
    const instances = (await Promise.all(orgs.map((org) => listInstances(services, org)))).flat();
    maxUnroutable = Math.max(maxUnroutable, instances.filter((i) => !isRoutable(i)).length);
    const r = await fetch(`${hostUrl}/api/ops/rollout`, { headers });
    progress = (await r.json()) as Record<string, unknown>;
    if (progress.status !== "running") break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const took = performance.now() - started;
  const writes = arm
    .requests()
    .filter((r) => ["PUT", "POST", "DELETE", "PATCH"].includes(r.method));
  const byKind: Record<string, number> = {};
  for (const w of writes) {
    const type = w.path.split("/providers/")[1]?.split("/").slice(0, 2).join("/") ?? w.path;
    const kind = `${w.method} ${type}`;
    byKind[kind] = (byKind[kind] ?? 0) + 1;
  }
  return {
    [`upgrade of ${UPGRADES} Running instances, batches of ${UPGRADE_BATCH}`]: `${fmt(took)} (${JSON.stringify({ status: progress.status, upgraded: progress.upgraded, failed: progress.failed })})`,
    "ARM writes per upgraded instance": `${(writes.length / UPGRADES).toFixed(2)} (${JSON.stringify(byKind)})`,
    [`most instances unroutable at once (target <= ${UPGRADE_BATCH})`]: maxUnroutable,
  };
}

export async function benchProvisioning(
  opts: { serviceBusConnection?: string } = {},
): Promise<Record<string, string | number>> {
  const figures: Record<string, string | number> = {};
  const supabase = await startBurstSupabase();
  const platform = await startPlatform({
    sandbox: false,
    deploymentDelayMs: 0,
    ...(opts.serviceBusConnection ? { serviceBusConnection: opts.serviceBusConnection } : {}),
    env: supabaseEnv(supabase),
  });
  const services = platform.services;
  const hostLog: string[] = [];
  const local = await startBenchApp(platform, (level, msg) => {
    if (process.env.BENCH_DEBUG) hostLog.push(`${new Date().toISOString()} ${level} ${msg}`);
  });
  const host = local.host;
  try {
    const arm = platform.arm;
    if (!arm) throw new Error("the ARM simulator did not start");
    // Ten orgs of 20 projects, one verified session each: a person's session is rate-limited
    // (RATE_LIMITS.provisioning), so the burst comes from several orgs at once.
    const orgs = await Promise.all(
      Array.from({ length: ORGS }, () =>
        connectOrg(services, supabase, { projects: PROJECTS / ORGS }),
      ),
    );
    arm.resetRequests();
    supabase.resetStats();
    const pushesBefore = arm.runCommands().length;
    const origin = new URL(platform.config.PUBLIC_BASE_URL).origin;

    const started = performance.now();
    const responses = await Promise.all(
      orgs.flatMap((org) =>
        org.refs.map((ref) =>
          fetch(`${host.url}/api/projects/${ref}/grafana`, {
            method: "PUT",
            headers: { cookie: `${org.cookie.name}=${org.cookie.value}`, origin },
          }),
        ),
      ),
    );
    const accepted = performance.now() - started;
    const statuses: Record<number, number> = {};
    for (const r of responses) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    if ((statuses[202] ?? 0) !== PROJECTS)
      throw new Error(`PUT statuses ${JSON.stringify(statuses)}`);

    let running = 0;
    let failed = 0;
    while (performance.now() - started < TIMEOUT_MS) {
      const instances = (
        await Promise.all(orgs.map((org) => listInstances(services, org.slug)))
      ).flat();
      running = instances.filter((i) => i.state === "Running").length;
      failed = instances.filter((i) => i.state === "Failed").length;
      if (running + failed === PROJECTS) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const allRunning = performance.now() - started;

    const writes = arm
      .requests()
      .filter((r) => ["PUT", "POST", "DELETE", "PATCH"].includes(r.method));
    const deployments = arm.deployments();
    const duplicates = deployments.filter((d) => d.puts > 1).length;
    if (process.env.BENCH_DEBUG) {
      for (const d of deployments.filter((x) => x.puts > 1)) {
        const puts = arm
          .requests()
          .filter((r) => r.method === "PUT" && r.path.includes(`/deployments/${d.name}`));
        console.log(
          "DUP",
          d.name,
          JSON.stringify(puts.map((r) => ({ status: r.status, at: r.at }))),
        );
        const ref = d.name.replace(/^grafana-/, "");
        for (const line of hostLog.filter((l) => l.includes(ref))) console.log(`  ${line}`);
      }
    }
    const pushes = arm.runCommands().length - pushesBefore;
    const byKind: Record<string, number> = {};
    for (const w of writes) {
      const kind = w.path.includes("/deployments/")
        ? "deployment PUT"
        : w.path.toLowerCase().includes("/dnszones/")
          ? "DNS PUT"
          : w.path.toLowerCase().endsWith("/runcommand")
            ? "run command"
            : `${w.method} other`;
      byKind[kind] = (byKind[kind] ?? 0) + 1;
    }

    figures[`${PROJECTS} concurrent PUTs answered (all 202)`] = fmt(accepted);
    figures[`time until all ${PROJECTS} Running`] =
      `${fmt(allRunning)} (${running} Running, ${failed} Failed)`;
    figures["ARM write calls per provision (target <= 4)"] =
      `${(writes.length / PROJECTS).toFixed(2)} (${JSON.stringify(byKind)})`;
    figures["duplicate deployments (must be 0)"] = duplicates;
    figures["deployment PUTs per operation (max)"] = Math.max(
      0,
      ...arm.deploymentPuts().map((p) => p.puts),
    );
    figures["deployments"] = deployments.length;
    figures["gateway pushes for the burst (target <= 10)"] = pushes;
    figures["ARM requests per provision (reads included)"] = (
      arm.requests().length / PROJECTS
    ).toFixed(1);
    const supa = supabase.stats();
    figures["Supabase Management API calls per provision"] =
      `${(supa.managementCalls / PROJECTS).toFixed(2)} (${JSON.stringify(supa.byRoute)})`;
    Object.assign(
      figures,
      await upgradeFigures(
        host.url,
        platform,
        orgs.map((o) => o.slug),
      ),
    );
    Object.assign(figures, renderFigures());
  } finally {
    await local.close();
    await platform.close();
    await supabase.close();
  }
  return figures;
}
