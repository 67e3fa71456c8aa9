/**
 * A stand-in for a project's Grafana behind the gateway (sandbox and tests): it answers every
 * request with who it thinks the user is, read from the auth-proxy headers the gateway sets
 * (`X-WEBAUTH-USER`, `-EMAIL`, `-NAME`, `-ROLE`), as real Grafana with `[auth.proxy]` would sign
 * them in. `GET /api/user` answers JSON, `GET /api/health` Grafana's health shape, anything else a
 * small HTML page. Every request is recorded. Never deployed.
 */
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface StandInIdentity {
  login: string | null;
  email: string | null;
  name: string | null;
  role: string | null;
}

export interface StandInRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  identity: StandInIdentity;
}

export interface GrafanaStandIn {
  port: number;
  /** Requests received, oldest first. */
  seen: StandInRequest[];
  close(): Promise<void>;
}

const one = (v: string | string[] | undefined): string | null =>
  v === undefined ? null : Array.isArray(v) ? (v[0] ?? null) : v;

export function identityOf(headers: IncomingHttpHeaders): StandInIdentity {
  return {
    login: one(headers["x-webauth-user"]),
    email: one(headers["x-webauth-email"]),
    name: one(headers["x-webauth-name"]),
    role: one(headers["x-webauth-role"]),
  };
}

const escapeHtml = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch] ?? ch,
  );

export function startGrafanaStandIn(
  opts: { port?: number; host?: string } = {},
): Promise<GrafanaStandIn> {
  const seen: StandInRequest[] = [];
  const server: Server = createServer((req, res) => {
    const identity = identityOf(req.headers);
    seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, identity });
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/api/health") {
      res.setHeader("Content-Type", "application/json");
      res.end(JSON.stringify({ database: "ok", version: "stand-in" }));
      return;
    }
    if (identity.login === null) {
      res.statusCode = 401;
      res.setHeader("Content-Type", "application/json");
      res.end(JSON.stringify({ message: "Unauthorized: no auth-proxy user" }));
      return;
    }
    if (path === "/api/user") {
      res.setHeader("Content-Type", "application/json");
      res.end(JSON.stringify(identity));
      return;
    }
    res.setHeader("Content-Type", "text/html; charset=utf-8");
    res.end(
      `<!doctype html><html><head><title>Grafana (stand-in)</title></head><body><h1>Grafana (stand-in)</h1>` +
        `<p>Signed in as <b>${escapeHtml(identity.name ?? identity.login)}</b> ` +
        `(${escapeHtml(identity.email ?? "no e-mail")}), role <b>${escapeHtml(identity.role ?? "none")}</b>.</p>` +
        `<p>Login: <code>${escapeHtml(identity.login)}</code></p></body></html>\n`,
    );
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => {
      resolve({
        port: (server.address() as AddressInfo).port,
        seen,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}
