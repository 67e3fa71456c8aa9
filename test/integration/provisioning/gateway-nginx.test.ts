/**
 * A gateway push end to end with a real nginx: the gateway consumer renders the config from the
 * instances table and sends the push script by run command; the ARM simulator executes that
 * script with bash against an nginx running out of a temp prefix; then a request with
 * `Host: <ref>.<domain>` reaches a stand-in Grafana on the instance's private IP, once signed in
 * with a ticket the Function App signed (the sign-in's njs module travels with the push).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { request as httpsRequest } from "node:https";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { gatewaySigninScript, handleGatewayMessage } from "../../../lib/gateway/consumer.js";
import { GATEWAY_SESSION_COOKIE } from "../../../lib/gateway/signin-njs.js";
import { gatewayKeysFile, signToken } from "../../../lib/grafana-signin/token.js";
import { renderGatewayConfig } from "../../../lib/gateway/nginx.js";
import { readGatewayState } from "../../../lib/gateway/state.js";
import { createInstance } from "../../../lib/instances/store.js";
import type { InstanceState } from "../../../lib/instances/lifecycle.js";
import { freePort, waitForPort } from "../../../local/ports.js";
import type { Platform } from "../../../local/platform.js";
import type { RunCommandExecutor } from "../../../local/simulators/arm.js";
import { TestClient } from "../../helpers/client.js";
import { randomRef, randomSlug, startTestPlatform } from "../../helpers/platform.js";
import { createNginxSandbox, nginxPath, type NginxSandbox } from "../../helpers/system-tools.js";

/** Runs a run-command script for real, as the VM agent would (one shell, lines in order). */
const bashExecutor: RunCommandExecutor = (_vm, script) =>
  new Promise((resolve) => {
    const child = spawn("bash", ["-s"], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ exitCode: code ?? 1, stdout, stderr }));
    child.stdin.end(script.join("\n") + "\n");
  });

describe("gateway push through run command to a real nginx", () => {
  let sb: NginxSandbox;
  let platform: Platform;
  let nginx: ChildProcess | undefined;
  let upstream: Server;
  let httpsPort = 0;
  /** A loopback address of its own, so the stand-in can listen on Grafana's port 3000. */
  const upstreamIp = `127.${20 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;

  const get = (host: string, path = "/api/health", cookie?: string) =>
    new Promise<{ status: number; body: string; signin?: string; setCookie?: string }>(
      (resolve, reject) => {
        const req = httpsRequest(
          {
            host: "127.0.0.1",
            port: httpsPort,
            path,
            servername: host,
            rejectUnauthorized: false,
            agent: false,
            headers: { host, ...(cookie ? { cookie } : {}) },
          },
          (res) => {
            let body = "";
            res.setEncoding("utf8");
            res.on("data", (c: string) => (body += c));
            res.on("end", () =>
              resolve({
                status: res.statusCode ?? 0,
                body,
                signin: res.headers["x-supafana-signin"] as string | undefined,
                setCookie: res.headers["set-cookie"]?.[0],
              }),
            );
          },
        );
        req.on("error", reject);
        req.end();
      },
    );

  /** Signs in to a host as the Function App would send a member there; the session cookie. */
  const signIn = async (ref: string): Promise<string> => {
    const now = Math.floor(Date.now() / 1000);
    const ticket = signToken(platform.config.GRAFANA_SESSION_KEYS, {
      typ: "ticket",
      aud: ref,
      sub: "user-1",
      email: "ada@demo.example",
      name: "ada",
      role: "Viewer",
      org: "demo",
      iat: now,
      exp: now + 60,
      jti: randomUUID().replace(/-/g, ""),
    });
    const res = await get(
      `${ref}.${platform.config.GRAFANA_DOMAIN}`,
      `/_supafana/session?ticket=${ticket}`,
    );
    expect(res.status, res.body).toBe(302);
    const cookie = (res.setCookie ?? "").split(";")[0] ?? "";
    expect(cookie.startsWith(`${GATEWAY_SESSION_COOKIE}=`)).toBe(true);
    return cookie;
  };

  const plant = async (state: InstanceState) => {
    const now = new Date();
    return createInstance(platform.services, {
      org: randomSlug("gwn"),
      ref: randomRef(),
      state,
      operationId: randomUUID(),
      operation: "provision",
      step: "verify",
      attempts: 0,
      operationStartedAt: now,
      plan: "paid",
      privateIp: upstreamIp,
      createdAt: now,
      updatedAt: now,
    });
  };

  beforeAll(async () => {
    sb = createNginxSandbox();
    const httpPort = await freePort();
    httpsPort = await freePort();
    const nginxBinary = nginxPath();
    const render = {
      certificatePath: sb.certificatePath,
      certificateKeyPath: sb.certificateKeyPath,
      paths: sb.paths,
      user: null,
      listen: { http: httpPort, https: httpsPort },
    };
    // The gateway's sign-in files, as the VM's key fetcher and cloud-init leave them.
    chmodSync(sb.dir, 0o711);
    const usedTicketsDir = `${sb.dir}/used-tickets`;
    mkdirSync(usedTicketsDir, { mode: 0o777 });
    chmodSync(usedTicketsDir, 0o777);
    const keysPath = `${sb.dir}/grafana-session-keys.json`;
    const signin = { scriptDir: `${sb.dir}/supafana`, keysPath, usedTicketsDir };
    platform = await startTestPlatform({
      runCommandExecutor: bashExecutor,
      gatewayHost: {
        signin,
        render,
        push: {
          targetPath: sb.configPath,
          nginxBinary,
          prefix: `${sb.dir}/`,
          reloadCommand: `${nginxBinary} -p ${sb.dir}/ -c ${sb.configPath} -s reload`,
        },
      },
    });
    upstream = createServer((req, res) => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ grafana: "stand-in", host: req.headers.host }));
    });
    await new Promise<void>((resolve) => upstream.listen(3000, upstreamIp, resolve));

    writeFileSync(keysPath, gatewayKeysFile(platform.config.GRAFANA_SESSION_KEYS), {
      mode: 0o644,
    });
    // The gateway VM as it boots: nginx serving an empty route map.
    writeFileSync(
      sb.configPath,
      renderGatewayConfig([], { domain: platform.config.GRAFANA_DOMAIN, ...render }),
    );
    nginx = spawn(
      nginxBinary,
      ["-p", `${sb.dir}/`, "-c", sb.configPath, "-e", "stderr", "-g", "daemon off;"],
      {
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    await waitForPort(httpsPort, 10_000);
  });

  afterAll(async () => {
    if (nginx?.exitCode === null) {
      const exited = new Promise((resolve) => nginx?.once("exit", resolve));
      nginx.kill("SIGTERM");
      await exited;
    }
    upstream.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
    await platform.close();
    sb.cleanup();
  });

  it("when an instance becomes routable, then the pushed config routes its host to its private IP and others get 404", async () => {
    const instance = await plant("Verifying");
    const host = `${instance.ref}.${platform.config.GRAFANA_DOMAIN}`;
    expect((await get(host)).status).toBe(404);

    const ctx = new TestClient([], platform.services).context("gatewaySync");
    const outcome = await handleGatewayMessage(
      platform.services,
      { requestedAt: new Date().toISOString(), deferred: true },
      ctx,
    );
    expect(outcome).toBe("pushed");
    const run = platform.arm?.runCommands().at(-1);
    expect(run?.script.join("\n")).toContain("nginx");

    // Routed: the sign-in page until signed in, then the stand-in.
    const refused = await get(host);
    expect(refused.status).toBe(401);
    expect(refused.signin).toBe("missing");
    expect(run?.script.join("\n")).toContain(gatewaySigninScript(platform.services).path);
    const res = await get(host, "/api/health", await signIn(instance.ref));
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ grafana: "stand-in" });
    expect((await get(`${randomRef()}.${platform.config.GRAFANA_DOMAIN}`)).status).toBe(404);
    expect((await readGatewayState(platform.services)).hash).toBeTruthy();
  });

  it("when the host's nginx refuses the new config, then the message fails and the previous config keeps serving", async () => {
    const routed = await plant("Running");
    const ctx = new TestClient([], platform.services).context("gatewaySync");
    await handleGatewayMessage(
      platform.services,
      { requestedAt: new Date().toISOString(), deferred: true },
      ctx,
    );
    const host = `${routed.ref}.${platform.config.GRAFANA_DOMAIN}`;
    const cookie = await signIn(routed.ref);
    expect((await get(host, "/api/health", cookie)).status).toBe(200);

    // Break the host: the certificate nginx -t needs disappears.
    const moved = `${sb.certificatePath}.away`;
    spawnSync("mv", [sb.certificatePath, moved]);
    try {
      await plant("Running");
      await expect(
        handleGatewayMessage(
          platform.services,
          { requestedAt: new Date().toISOString(), deferred: true },
          ctx,
        ),
      ).rejects.toThrow();
    } finally {
      spawnSync("mv", [moved, sb.certificatePath]);
    }
    expect((await get(host, "/api/health", cookie)).status).toBe(200);
  });
});
