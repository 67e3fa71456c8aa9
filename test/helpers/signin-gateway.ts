/**
 * A real nginx with the njs module running the rendered gateway config with the Grafana sign-in,
 * out of a temp prefix on free ports, in front of the local Grafana stand-in. Used by the
 * sign-in tests and the gateway bench.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { request as httpsRequest, Agent } from "node:https";
import { join } from "node:path";

import { renderGatewayConfig, type GatewayRoute } from "../../lib/gateway/nginx.js";
import { renderSigninScript, signinScriptFileName } from "../../lib/gateway/signin-njs.js";
import { gatewayKeysFile, type SigninKeySet } from "../../lib/grafana-signin/token.js";
import { startGrafanaStandIn, type GrafanaStandIn } from "../../local/grafana-standin.js";
import { freePort, waitForPort } from "../../local/ports.js";
import {
  createNginxSandbox,
  NJS_MODULE_PATH,
  nginxPath,
  type NginxSandbox,
} from "./system-tools.js";

export const SIGNIN_DOMAIN = "grafana.test";
export const APP_URL = "https://app.supafana.test/";

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface SigninGateway {
  sb: NginxSandbox;
  standIn: GrafanaStandIn;
  httpsPort: number;
  usedTicketsDir: string;
  get(host: string, path: string, headers?: Record<string, string>, agent?: Agent): Promise<Reply>;
  /**
   * Writes a new key set and config (optionally routing only `refs`), reloads nginx, and waits
   * until only new workers serve.
   */
  reload(
    keys: SigninKeySet,
    notBefore?: ReadonlyMap<string, number>,
    refs?: readonly string[],
  ): Promise<void>;
  stop(): Promise<void>;
}

/** Process ids whose parent is `pid` (the nginx workers of a master). */
function childrenOf(pid: number): Set<number> {
  const out = new Set<number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) === pid) out.add(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export async function startSigninGateway(opts: {
  refs: readonly string[];
  keys: SigninKeySet;
  notBefore?: ReadonlyMap<string, number>;
  workers?: number;
  /** false renders the same gateway without the sign-in (the bench's baseline). */
  signin?: boolean;
}): Promise<SigninGateway> {
  const sb = createNginxSandbox();
  // Workers run as `nobody` when the tests run as root: they must reach the used-tickets dir.
  chmodSync(sb.dir, 0o711);
  const usedTicketsDir = join(sb.dir, "used-tickets");
  mkdirSync(usedTicketsDir, { mode: 0o777 });
  chmodSync(usedTicketsDir, 0o777);
  const keysPath = join(sb.dir, "session-keys.json");
  const standIn = await startGrafanaStandIn();
  const [httpPort, httpsPort] = await Promise.all([freePort(), freePort()]);
  const routesOf = (refs: readonly string[]): GatewayRoute[] =>
    refs.map((ref) => ({ ref, privateIp: "127.0.0.1", port: standIn.port }));

  const script = renderSigninScript({ keysPath, usedTicketsDir, appUrl: APP_URL });
  const scriptPath = join(sb.dir, signinScriptFileName(script));
  writeFileSync(scriptPath, script);

  const writeConfig = (
    keys: SigninKeySet,
    notBefore?: ReadonlyMap<string, number>,
    refs: readonly string[] = opts.refs,
  ) => {
    // njs reads the key set in each worker (on the VM: 0640 root:www-data); here the workers
    // may run as `nobody`, and the keys are throwaway.
    writeFileSync(keysPath, gatewayKeysFile(keys), { mode: 0o644 });
    let config = renderGatewayConfig(routesOf(refs), {
      domain: SIGNIN_DOMAIN,
      certificatePath: sb.certificatePath,
      certificateKeyPath: sb.certificateKeyPath,
      paths: sb.paths,
      user: null,
      listen: { http: httpPort, https: httpsPort },
      // The bench sends thousands of requests from one address.
      rateLimitPerSecond: 100_000,
      burst: 100_000,
      ...(opts.signin === false
        ? {}
        : {
            signin: {
              scriptPath,
              njsModulePath: NJS_MODULE_PATH,
              notBefore: notBefore ?? new Map<string, number>(),
            },
          }),
    });
    if (opts.workers !== undefined) {
      config = config.replace("worker_processes auto;", `worker_processes ${opts.workers};`);
    }
    writeFileSync(sb.configPath, config);
  };
  writeConfig(opts.keys, opts.notBefore);

  const nginx: ChildProcess = spawn(
    nginxPath(),
    ["-p", `${sb.dir}/`, "-c", sb.configPath, "-e", "stderr", "-g", "daemon off;"],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  nginx.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  try {
    await waitForPort(httpsPort, 10_000);
  } catch (err) {
    nginx.kill("SIGTERM");
    throw new Error(`nginx did not start: ${stderr}`, { cause: err });
  }
  const masterPid = nginx.pid ?? 0;

  const get = (
    host: string,
    path: string,
    headers: Record<string, string> = {},
    agent?: Agent,
  ): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const req = httpsRequest(
        {
          host: "127.0.0.1",
          port: httpsPort,
          path,
          servername: host.toLowerCase(),
          rejectUnauthorized: false,
          agent: agent ?? false,
          headers: { host, ...headers },
        },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => (body += chunk));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        },
      );
      req.on("error", reject);
      req.end();
    });

  return {
    sb,
    standIn,
    httpsPort,
    usedTicketsDir,
    get,
    async reload(keys, notBefore, refs) {
      const before = childrenOf(masterPid);
      writeConfig(keys, notBefore, refs);
      process.kill(masterPid, "SIGHUP");
      // Done when none of the old workers is left and new ones serve (requests here close
      // their connections, so old workers exit as soon as their last request is answered).
      const deadline = Date.now() + 15_000;
      for (;;) {
        const now = childrenOf(masterPid);
        const oldLeft = [...before].some((pid) => now.has(pid));
        if (!oldLeft && now.size > 0) return;
        if (Date.now() > deadline) throw new Error(`nginx reload did not finish: ${stderr}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop() {
      if (nginx.exitCode === null) {
        const exited = new Promise((resolve) => nginx.once("exit", resolve));
        nginx.kill("SIGTERM");
        await exited;
      }
      await standIn.close();
      sb.cleanup();
    },
  };
}
