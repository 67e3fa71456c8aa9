/**
 * Runs a real nginx with a rendered gateway config (on free high ports, out of a temp prefix) in
 * front of a local stand-in for Grafana, then applies a second config with the push script and a
 * real `nginx -s reload`.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type Server,
} from "node:http";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { connect as tlsConnect } from "node:tls";
import { writeFileSync } from "node:fs";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  renderGatewayConfig,
  type GatewayRenderOptions,
  type GatewayRoute,
} from "../../../lib/gateway/nginx.js";
import { parseAppliedHash, renderGatewayPushScript } from "../../../lib/gateway/push-script.js";
import { createNginxSandbox, nginxPath, type NginxSandbox } from "../../helpers/system-tools.js";
import { freePort, waitForPort } from "../../../local/ports.js";

const DOMAIN = "grafana.test";
const REF_A = "aaaaaaaaaaaaaaaaaaaa";
const REF_B = "bbbbbbbbbbbbbbbbbbbb";

interface Seen {
  url: string;
  headers: IncomingHttpHeaders;
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

describe("gateway config under a running nginx", () => {
  let sb: NginxSandbox;
  let nginx: ChildProcess | undefined;
  let upstream: Server;
  let upstreamPort = 0;
  let httpPort = 0;
  let httpsPort = 0;
  const seen: Seen[] = [];
  const upgraded = new Set<Duplex>();

  const options = (extra: Partial<GatewayRenderOptions> = {}): GatewayRenderOptions => ({
    domain: DOMAIN,
    certificatePath: sb.certificatePath,
    certificateKeyPath: sb.certificateKeyPath,
    paths: sb.paths,
    user: null,
    listen: { http: httpPort, https: httpsPort },
    ...extra,
  });

  const get = (host: string, path: string, headers: Record<string, string> = {}) =>
    new Promise<Reply>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: "127.0.0.1",
          port: httpsPort,
          path,
          servername: host.toLowerCase(),
          rejectUnauthorized: false,
          agent: false,
          headers: { host, ...headers },
        },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => (body += chunk));
          res.on("end", () => {
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              rawHeaders: res.rawHeaders,
              body,
            });
          });
        },
      );
      req.on("error", reject);
      req.end();
    });

  beforeAll(async () => {
    sb = createNginxSandbox();
    [upstreamPort, httpPort, httpsPort] = await Promise.all([freePort(), freePort(), freePort()]);
    upstream = createServer((req, res) => {
      seen.push({ url: req.url ?? "", headers: req.headers });
      res.setHeader("X-Frame-Options", "deny");
      res.setHeader("Content-Type", "application/json");
      res.end(JSON.stringify({ database: "ok" }));
    });
    upstream.on("upgrade", (_req, socket) => {
      upgraded.add(socket);
      socket.write(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
      );
      socket.on("data", (data) => socket.write(data));
    });
    await new Promise<void>((resolve) => upstream.listen(upstreamPort, "127.0.0.1", resolve));

    const routes: GatewayRoute[] = [{ ref: REF_A, privateIp: "127.0.0.1", port: upstreamPort }];
    writeFileSync(sb.configPath, renderGatewayConfig(routes, options()));
    nginx = spawn(
      nginxPath(),
      ["-p", `${sb.dir}/`, "-c", sb.configPath, "-e", "stderr", "-g", "daemon off;"],
      {
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    // The bound only ends a start that failed.
    await waitForPort(httpsPort, 25_000);
  });

  afterAll(async () => {
    if (nginx?.pid !== undefined && nginx.exitCode === null) {
      const exited = new Promise((resolve) => nginx?.once("exit", resolve));
      nginx.kill("SIGTERM");
      await exited;
    }
    for (const socket of upgraded) socket.destroy();
    upstream.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
    sb.cleanup();
  });

  it("when a known ref is requested, then it reaches its upstream with the forwarding headers", async () => {
    seen.length = 0;
    const res = await get(`${REF_A}.${DOMAIN}`, "/api/health?token=secret", {
      "x-forwarded-for": "6.6.6.6",
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ database: "ok" });
    const request = seen.at(-1);
    expect(request?.url).toBe("/api/health?token=secret");
    expect(request?.headers.host).toBe(`${REF_A}.${DOMAIN}`);
    expect(request?.headers["x-real-ip"]).toBe("127.0.0.1");
    expect(request?.headers["x-forwarded-for"]).toBe("127.0.0.1");
    expect(request?.headers["x-forwarded-proto"]).toBe("https");

    expect(res.headers["strict-transport-security"]).toBe("max-age=31536000; includeSubDomains");
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
    expect(res.headers["referrer-policy"]).toBe("strict-origin-when-cross-origin");
    const frameOptions = res.rawHeaders
      .filter((_, i) => i % 2 === 0)
      .filter((h) => h.toLowerCase() === "x-frame-options");
    expect(frameOptions).toHaveLength(1);
    expect(res.headers["x-frame-options"]).toBe("SAMEORIGIN");
    expect(res.headers.server).toBe("nginx");
  });

  it("when the Host header differs only in case, then it is still routed", async () => {
    const res = await get(`${REF_A.toUpperCase()}.GRAFANA.Test`, "/");
    expect(res.status).toBe(200);
  });

  it("when an unknown ref under the domain is requested, then it gets a JSON 404 with security headers", async () => {
    const res = await get(`${"c".repeat(20)}.${DOMAIN}`, "/");
    expect(res.status).toBe(404);
    expect(res.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(res.body)).toMatchObject({ error: { code: "not_found" } });
    expect(res.headers["strict-transport-security"]).toBeDefined();
  });

  it("when the TLS name is not ours, then the handshake is refused", async () => {
    const error = await new Promise<Error | undefined>((resolve) => {
      const socket = tlsConnect({
        host: "127.0.0.1",
        port: httpsPort,
        servername: "example.org",
        rejectUnauthorized: false,
      });
      socket.once("secureConnect", () => {
        socket.destroy();
        resolve(undefined);
      });
      socket.once("error", (err: Error) => {
        resolve(err);
      });
    });
    expect(error?.message).toMatch(/unrecognized name|alert/i);
  });

  it("when plain HTTP is used for one of our names, then it redirects to HTTPS", async () => {
    const res = await new Promise<{ status: number; location: string | undefined }>(
      (resolve, reject) => {
        const req = httpRequest(
          {
            host: "127.0.0.1",
            port: httpPort,
            path: "/d/home?x=1",
            headers: { host: `${REF_A}.${DOMAIN}` },
          },
          (r) => {
            r.resume();
            resolve({ status: r.statusCode ?? 0, location: r.headers.location });
          },
        );
        req.on("error", reject);
        req.end();
      },
    );
    expect(res.status).toBe(301);
    expect(res.location).toBe(`https://${REF_A}.${DOMAIN}/d/home?x=1`);
  });

  it("when a client opens a websocket, then the upgrade is proxied both ways", async () => {
    const echoed = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest({
        host: "127.0.0.1",
        port: httpsPort,
        path: "/api/live/ws",
        servername: `${REF_A}.${DOMAIN}`,
        rejectUnauthorized: false,
        agent: false,
        headers: { host: `${REF_A}.${DOMAIN}`, connection: "Upgrade", upgrade: "websocket" },
      });
      req.on("upgrade", (_res, socket) => {
        socket.once("data", (data: Buffer) => {
          socket.destroy();
          resolve(data.toString());
        });
        socket.write("ping");
      });
      req.on("response", (res) => {
        reject(new Error(`no upgrade, status ${res.statusCode}`));
      });
      req.on("error", reject);
      req.end();
    });
    expect(echoed).toBe("ping");
  });

  it("when a new config is pushed with a real reload, then nginx serves the new routes and limits", async () => {
    const next = renderGatewayConfig(
      [{ ref: REF_B, privateIp: "127.0.0.1", port: upstreamPort }],
      options({ rateLimitPerSecond: 1, burst: 0 }),
    );
    const script = renderGatewayPushScript(next, {
      targetPath: sb.configPath,
      nginxBinary: nginxPath(),
      prefix: `${sb.dir}/`,
      reloadCommand: `${nginxPath()} -p ${sb.dir}/ -c ${sb.configPath} -s reload`,
    });
    const file = join(sb.dir, "push.sh");
    writeFileSync(file, `${script.join("\n")}\n`);
    const res = spawnSync("sh", [file], { encoding: "utf8" });
    expect(res.status, res.stderr).toBe(0);
    expect(parseAppliedHash(res.stdout)).toBeDefined();

    // The reload is asynchronous: wait for the new workers to answer (the bound only ends a
    // reload that never happens).
    await expect
      .poll(async () => (await get(`${REF_B}.${DOMAIN}`, "/")).status, {
        timeout: 25_000,
        interval: 100,
      })
      .toBe(200);
    expect((await get(`${REF_A}.${DOMAIN}`, "/")).status).toBe(404);

    const burst = await Promise.all(
      Array.from({ length: 5 }, () => get(`${REF_B}.${DOMAIN}`, "/")),
    );
    expect(burst.map((r) => r.status)).toContain(429);
  });
});
