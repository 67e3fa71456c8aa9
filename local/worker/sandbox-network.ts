/**
 * What a Function App in Azure has around it and a laptop does not, provided locally so the
 * shipped app runs unchanged with its production settings:
 *
 * - a managed identity: the App Service identity endpoint (`IDENTITY_ENDPOINT` +
 *   `IDENTITY_HEADER`) the Functions host gives the worker, answering a token for any resource;
 * - public TLS names: `management.azure.com` and `*.<GRAFANA_DOMAIN>` resolve to one local TLS
 *   front (a certificate of a throwaway local CA the process trusts for those names only) that
 *   forwards to the ARM simulator and answers for the simulated gateway.
 *
 * Only the local host (`npm start`, e2e tests, the benchmark) installs this; nothing deployed does.
 */
import { randomBytes } from "node:crypto";
import {
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import tls from "node:tls";

import type { SandboxGateway } from "../sandbox-gateway.js";
import { readBody } from "../function-host.js";
import { caSignedCertificate } from "../tls.js";

export interface SandboxNetworkOptions {
  /** The ARM simulator's plain-http URL. */
  armUrl?: string;
  /** Host name ARM requests are addressed to (the app's `ARM_ENDPOINT`). */
  armHost?: string;
  /** The simulated gateway answering `https://<ref>.<grafanaDomain>`. */
  gateway?: SandboxGateway;
  grafanaDomain: string;
}

export interface SandboxNetwork {
  /** Settings the Functions host would give the worker (managed identity). */
  env: Record<string, string>;
  close(): Promise<void>;
}

async function listen(
  server: ReturnType<typeof createHttpServer> | ReturnType<typeof createHttpsServer>,
) {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

let restoreTls: (() => void) | undefined;

/**
 * Routes TLS connections for the given names to a local port, trusting the local CA for them,
 * as DNS and public certificates do in Azure. Other connections are untouched.
 */
function routeTls(matches: (host: string) => boolean, port: number, ca: string): () => void {
  const original = tls.connect;
  const patched = function (this: unknown, ...args: unknown[]) {
    const [first] = args;
    if (first && typeof first === "object" && !("socket" in first && first.socket)) {
      const opts = first as tls.ConnectionOptions;
      const host = opts.host ?? opts.servername ?? "";
      if (matches(host)) {
        const rerouted: tls.ConnectionOptions = {
          ...opts,
          host: "127.0.0.1",
          port,
          servername: opts.servername ?? host,
          ca: [ca],
        };
        return (original as (...a: unknown[]) => tls.TLSSocket).apply(this, [
          rerouted,
          ...args.slice(1),
        ]);
      }
    }
    return (original as (...a: unknown[]) => tls.TLSSocket).apply(this, args);
  } as typeof tls.connect;
  tls.connect = patched;
  return () => {
    if (tls.connect === patched) tls.connect = original;
  };
}

export async function startSandboxNetwork(opts: SandboxNetworkOptions): Promise<SandboxNetwork> {
  const armHost = (opts.armHost ?? "management.azure.com").toLowerCase();
  const domain = opts.grafanaDomain.toLowerCase();
  const isGrafanaHost = (host: string) => host.toLowerCase().endsWith(`.${domain}`);
  const closers: Array<() => Promise<void> | void> = [];

  // Managed identity (App Service 2019-08-01 protocol).
  const identitySecret = randomBytes(16).toString("hex");
  const identity = createHttpServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const resource = url.searchParams.get("resource");
    if (req.headers["x-identity-header"] !== identitySecret || !resource) {
      res.writeHead(400, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "invalid_request" }));
      return;
    }
    const expiresOn = Math.floor(Date.now() / 1000) + 3600;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        access_token: "local-simulator-token",
        expires_on: String(expiresOn),
        resource,
        token_type: "Bearer",
      }),
    );
  });
  const identityPort = await listen(identity);
  closers.push(() => new Promise<void>((r) => identity.close(() => r())));

  // The TLS front for the public names.
  const names = [armHost, `*.${domain}`];
  const { ca, key, cert } = caSignedCertificate(names);
  const front = createHttpsServer({ key, cert }, (req, res) => {
    void serveFront(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.end();
    });
  });
  const serveFront = async (req: IncomingMessage, res: ServerResponse) => {
    const host = (req.headers.host ?? "").split(":")[0]?.toLowerCase() ?? "";
    if (host === armHost && opts.armUrl) {
      const target = new URL(opts.armUrl);
      const upstream = httpRequest({
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: target.host },
      });
      upstream.on("response", (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      upstream.on("error", () => {
        if (!res.headersSent) res.writeHead(502).end();
      });
      req.pipe(upstream);
      return;
    }
    if (isGrafanaHost(host) && opts.gateway) {
      const body = await readBody(req);
      const url = `https://${host}${req.url ?? "/"}`;
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (typeof v === "string") headers[k] = v;
      }
      const answer = await opts.gateway.grafanaHosts.fetch(url, {
        method: req.method ?? "GET",
        headers,
        ...(body.length ? { body } : {}),
      });
      res.writeHead(answer.status, {
        "content-type": answer.headers.get("content-type") ?? "text/plain",
      });
      res.end(Buffer.from(await answer.arrayBuffer()));
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" }).end("unknown host");
  };
  const frontPort = await listen(front);
  closers.push(() => new Promise<void>((r) => front.close(() => r())));
  closers.push(() => front.closeAllConnections());

  restoreTls?.();
  const restore = routeTls((h) => h.toLowerCase() === armHost || isGrafanaHost(h), frontPort, ca);
  restoreTls = restore;
  closers.push(() => {
    restore();
    if (restoreTls === restore) restoreTls = undefined;
  });

  return {
    env: {
      IDENTITY_ENDPOINT: `http://127.0.0.1:${identityPort}/msi/token`,
      IDENTITY_HEADER: identitySecret,
    },
    async close() {
      for (const fn of closers.reverse()) await fn();
    },
  };
}
