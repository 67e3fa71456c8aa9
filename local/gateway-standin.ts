/**
 * The local platform's stand-in for the gateway's Grafana sign-in (sandbox only; in Azure and in
 * the real-nginx tests, nginx's njs module does this: `lib/gateway/signin-njs.ts`). It serves
 * `http://<ref>.<GRAFANA_DOMAIN>:<port>/` (`*.localhost` names resolve to this machine in
 * browsers and curl): exchanges a ticket from `POST /api/projects/{ref}/grafana/session` (the
 * link's path and query, on this origin) for the gateway's session cookie, checks that cookie on each request with the same checks
 * (`verifyToken`), and forwards to the local Grafana stand-in with the auth-proxy headers, which
 * then shows who it thinks the user is. Hosts are routed from the config the sandbox gateway last
 * applied, as on the VM.
 */
import { randomUUID } from "node:crypto";
import { createServer, request, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

import { DENIED_PATH, EXCHANGE_PATH, GATEWAY_SESSION_COOKIE } from "../lib/gateway/signin-njs.js";
import { readRevocations } from "../lib/gateway/state.js";
import { ROUTABLE_STATES } from "../lib/instances/lifecycle.js";
import { listAllInstances } from "../lib/instances/store.js";
import {
  SESSION_TTL_SECONDS,
  signToken,
  verifyToken,
  type VerifyFailure,
} from "../lib/grafana-signin/token.js";
import type { Services } from "../lib/services.js";

export interface LocalGateway {
  port: number;
  close(): Promise<void>;
}

export interface LocalGatewayOptions {
  /** Resolved when the platform is up (the gateway starts first, so its port can be configured). */
  services: () => Services | undefined;
  /** Hosts the sandbox gateway routes (`<ref>.<domain>`). */
  routed: () => ReadonlySet<string>;
  grafanaPort: number;
  port?: number;
}

function page(res: ServerResponse, status: number, reason: VerifyFailure | "used", appUrl: string) {
  res.writeHead(status, {
    "content-type": "text/html; charset=utf-8",
    "cache-control": "no-store",
    "x-supafana-signin": reason,
  });
  res.end(
    `<!doctype html><html><head><title>Sign in to Grafana</title></head><body data-reason="${reason}">` +
      `<h1>Sign in to Grafana</h1><p>Refused: ${reason}.</p>` +
      `<p>Open Grafana again from <a href="${encodeURI(appUrl)}">Supafana</a>.</p></body></html>\n`,
  );
}

function cookieOf(req: IncomingMessage): string | undefined {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === GATEWAY_SESSION_COOKIE)
      return part.slice(i + 1).trim();
  }
  return undefined;
}

export function startLocalGateway(opts: LocalGatewayOptions): Promise<LocalGateway> {
  const used = new Set<string>();
  const server = createServer((req, res) => {
    void (async () => {
      const services = opts.services();
      if (!services) {
        res.writeHead(503).end();
        return;
      }
      const host = (req.headers.host ?? "").split(":")[0]?.toLowerCase() ?? "";
      const ref = host.split(".")[0] ?? "";
      const appUrl = services.config.PUBLIC_BASE_URL;
      if (!opts.routed().has(host)) {
        res.writeHead(404, { "content-type": "application/json" });
        res.end('{"error":{"code":"not_found","message":"No Grafana instance at this address"}}');
        return;
      }
      const org = (await listAllInstances(services, ROUTABLE_STATES)).find(
        (i) => i.ref === ref,
      )?.org;
      const notBefore = org === undefined ? 0 : ((await readRevocations(services)).get(org) ?? 0);
      const keys = services.config.GRAFANA_SESSION_KEYS;
      const now = Math.floor(Date.now() / 1000);
      const url = new URL(req.url ?? "/", "http://local");

      if (url.pathname === EXCHANGE_PATH) {
        const v = verifyToken(keys, url.searchParams.get("ticket") ?? "", {
          typ: "ticket",
          aud: ref,
          now,
          notBefore,
        });
        if (!v.ok) return page(res, 401, v.reason, appUrl);
        const jti = v.claims.jti ?? randomUUID();
        if (used.has(jti)) return page(res, 401, "used", appUrl);
        used.add(jti);
        const cookie = signToken(keys, {
          ...v.claims,
          typ: "session",
          iat: now,
          exp: now + SESSION_TTL_SECONDS,
          jti: undefined,
        });
        res.writeHead(302, {
          location: "/",
          "cache-control": "no-store",
          "set-cookie": `${GATEWAY_SESSION_COOKIE}=${cookie}; Path=/; Max-Age=${SESSION_TTL_SECONDS}; HttpOnly; Secure; SameSite=Lax`,
        });
        res.end();
        return;
      }
      if (url.pathname === DENIED_PATH) return page(res, 401, "missing", appUrl);
      const v = verifyToken(keys, cookieOf(req), { typ: "session", aud: ref, now, notBefore });
      if (!v.ok) return page(res, 401, v.reason, appUrl);
      const headers = Object.fromEntries(
        Object.entries(req.headers).filter(([k]) => !k.toLowerCase().startsWith("x-webauth-")),
      );
      const upstream = request(
        {
          host: "127.0.0.1",
          port: opts.grafanaPort,
          method: req.method,
          path: req.url,
          headers: {
            ...headers,
            "x-webauth-user": v.claims.sub,
            "x-webauth-email": v.claims.email,
            "x-webauth-name": v.claims.name,
            "x-webauth-role": v.claims.role,
          },
        },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on("error", () => res.writeHead(502).end());
      req.pipe(upstream);
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => {
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}
