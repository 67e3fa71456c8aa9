/**
 * Reconciler figures: the cost of one reconciler run over 1,000 Running instances when nothing
 * is wrong, run inside the built app (`POST /api/ops/reconciler/run` on the local host, which
 * loads dist/ through the worker contract). ARM requests are counted by the ARM simulator, table
 * requests by a counting proxy in front of Azurite's table endpoint, health probes by the report.
 * Target: no ARM request per instance (a constant number of listings) and no table write.
 */
import { Agent, createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";

import { readGatewayState } from "../../lib/gateway/state.js";
import { hostVersionOf } from "../../lib/grafana-host/versions.js";
import { createInstance } from "../../lib/instances/store.js";
import { LOCAL } from "../../local/defaults.js";
import { startPlatform } from "../../local/platform.js";
import { connectOrg } from "../helpers/org.js";
import { fmt } from "./load.js";
import { startBenchApp, startBurstSupabase, supabaseEnv } from "./setup.js";

const INSTANCES = 1000;
const ORGS = 10;

interface Counted {
  server: Server;
  url: string;
  count: { reads: number; writes: number; byTable: Record<string, number> };
}

/** An HTTP proxy to Azurite's table endpoint that counts what passes. */
async function countingProxy(target: URL): Promise<Counted> {
  const count = { reads: 0, writes: 0, byTable: {} as Record<string, number> };
  const agent = new Agent({ keepAlive: true });
  const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    const method = req.method ?? "GET";
    if (method === "GET") count.reads += 1;
    else count.writes += 1;
    const table = /^\/[^/]+\/([A-Za-z0-9]+)/.exec(req.url ?? "")?.[1] ?? "?";
    const key = `${method} ${table}`;
    count.byTable[key] = (count.byTable[key] ?? 0) + 1;
    const upstream = request(
      {
        host: target.hostname,
        port: target.port,
        method,
        agent,
        path: req.url,
        headers: { ...req.headers, host: target.host },
      },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on("error", () => res.destroy());
    req.on("error", () => upstream.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return { server, url: `http://127.0.0.1:${port}`, count };
}

export async function benchReconciler(): Promise<Record<string, string | number>> {
  const figures: Record<string, string | number> = {};
  const supabase = await startBurstSupabase();
  const platform = await startPlatform({
    sandbox: false,
    deploymentDelayMs: 0,
    env: supabaseEnv(supabase),
  });
  const services = platform.services;
  const arm = platform.arm;
  if (!arm) throw new Error("the ARM simulator did not start");

  // The app reaches Table storage through the counting proxy.
  const connection = platform.env.StorageConnection ?? "";
  const tableEndpoint = /TableEndpoint=([^;]+)/.exec(connection)?.[1];
  if (!tableEndpoint) throw new Error("no TableEndpoint in the storage connection string");
  const proxy = await countingProxy(new URL(tableEndpoint));
  const proxied = connection.replace(
    tableEndpoint,
    `${proxy.url}${new URL(tableEndpoint).pathname.replace(/\/$/, "")}`,
  );
  const local = await startBenchApp({
    ...platform,
    env: { ...platform.env, StorageConnection: proxied },
  });
  try {
    // 1,000 Running instances of 10 connected orgs, each with its VM in Azure, its snapshot taken
    // today and the current host version: nothing is wrong.
    const now = services.clock.now();
    const version = hostVersionOf(services.config.GRAFANA_TEMPLATE_SPEC_ID);
    const orgs = await Promise.all(
      Array.from({ length: ORGS }, () =>
        connectOrg(services, supabase, { projects: INSTANCES / ORGS }),
      ),
    );
    let n = 0;
    for (const org of orgs) {
      await Promise.all(
        org.refs.map((ref) => {
          const k = n++;
          arm.plantResource({
            resourceGroup: services.config.GRAFANA_RESOURCE_GROUP,
            type: "Microsoft.Compute/virtualMachines",
            name: `grafana-${ref}`,
            tags: { "supafana-ref": ref },
          });
          return createInstance(services, {
            org: org.slug,
            ref,
            state: "Running",
            step: "done",
            operation: "provision",
            operationId: `seed-${ref}`,
            attempts: 0,
            operationStartedAt: now,
            plan: "free",
            privateIp: `10.20.${Math.floor(k / 250)}.${(k % 250) + 4}`,
            url: `https://${ref}.${services.config.GRAFANA_DOMAIN}`,
            hostVersion: version,
            lastSnapshotAt: now,
            keyRotatedAt: now,
            createdAt: now,
            updatedAt: now,
          });
        }),
      );
    }

    const run = async () => {
      const res = await fetch(`${local.host.url}/api/ops/reconciler/run`, {
        method: "POST",
        headers: { "x-functions-key": LOCAL.adminKey, "x-ops-actor": "bench" },
      });
      if (res.status !== 200) throw new Error(`reconciler run: HTTP ${res.status}`);
      return (await res.json()) as Record<string, unknown>;
    };
    // A first run routes every instance through the gateway; the measured one finds all healthy.
    // The gateway's push is over once its state records the routes (no request of it is left to
    // be counted in the measured run).
    await run();
    for (let i = 0; i < 600 && ((await readGatewayState(services)).routes ?? 0) < INSTANCES; i++)
      await new Promise((r) => setTimeout(r, 100));
    arm.resetRequests();
    proxy.count.reads = 0;
    proxy.count.writes = 0;
    proxy.count.byTable = {};
    const started = performance.now();
    const report = await run();
    const took = performance.now() - started;

    const armRequests = arm.requests();
    const byKind: Record<string, number> = {};
    for (const r of armRequests) {
      const kind = `${r.method} ${r.path.split("/").slice(-2, -1)[0] ?? r.path}`;
      byKind[kind] = (byKind[kind] ?? 0) + 1;
    }
    figures[`reconciler run, ${INSTANCES} healthy Running instances`] = fmt(took);
    figures["ARM requests per run (target: constant, none per instance)"] =
      `${armRequests.length} (${JSON.stringify(byKind)})`;
    figures["table requests per run (reads / writes)"] =
      `${proxy.count.reads} / ${proxy.count.writes} (${JSON.stringify(proxy.count.byTable)})`;
    figures["health probes (HTTP through the gateway)"] = String(report.probed);
    figures["heals started / errors"] =
      `${String(report.healsStarted)} / ${JSON.stringify(report.errors)}`;
  } finally {
    await local.close();
    proxy.server.closeAllConnections();
    await new Promise<void>((r) => proxy.server.close(() => r()));
    await platform.close();
    await supabase.close();
  }
  return figures;
}
