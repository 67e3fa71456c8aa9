/**
 * A tiny HTTP server shared by the local simulators (Supabase, Loops, Stripe, ARM).
 * Simulators speak the real services' wire protocols over plain HTTP on loopback.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface SimRequest {
  method: string;
  /** Path without the query string, e.g. `/v1/projects`, exactly as sent (`//x` stays a path). */
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage["headers"];
  /** Raw body bytes as received. */
  rawBody: Buffer;
  /** Body as text (UTF-8). */
  text: string;
}

export interface SimResponse {
  status: number;
  headers?: Record<string, string>;
  /** Objects are sent as JSON; strings and buffers as they are. */
  body?: unknown;
}

/** Returned by a handler to close the socket without writing a response (time-out faults). */
export const DROP_CONNECTION: unique symbol = Symbol("drop-connection");

/** `signal` aborts when the server is closing, so handlers holding a request can give up. */
export type SimHandler = (
  req: SimRequest,
  signal: AbortSignal,
) => Promise<SimResponse | typeof DROP_CONNECTION> | SimResponse | typeof DROP_CONNECTION;

export interface SimServerOptions {
  port?: number;
  host?: string;
  /** The body of a 500 when a handler throws (each service has its own error shape). */
  errorBody?: (message: string) => unknown;
}

export interface RunningServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export function json(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): SimResponse {
  return {
    status,
    body,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  };
}

function write(res: ServerResponse, out: SimResponse): void {
  const headers = { ...(out.headers ?? {}) };
  let payload: string | Buffer | undefined;
  if (out.body === undefined) payload = undefined;
  else if (typeof out.body === "string" || Buffer.isBuffer(out.body)) payload = out.body;
  else {
    payload = JSON.stringify(out.body);
    headers["content-type"] ??= "application/json; charset=utf-8";
  }
  res.writeHead(out.status, headers);
  res.end(payload);
}

/** Splits a raw request target without URL parsing, so `//subscriptions/...` stays a path. */
function splitTarget(target: string): { path: string; query: URLSearchParams } {
  const q = target.indexOf("?");
  const path = q < 0 ? target : target.slice(0, q);
  return {
    path: path === "" ? "/" : path,
    query: new URLSearchParams(q < 0 ? "" : target.slice(q + 1)),
  };
}

/** Starts a simulator on 127.0.0.1. `port` 0 picks a free port. */
export async function startSimServer(
  handler: SimHandler,
  portOrOptions: number | SimServerOptions = 0,
): Promise<RunningServer> {
  const opts: SimServerOptions =
    typeof portOrOptions === "number" ? { port: portOrOptions } : portOrOptions;
  const host = opts.host ?? "127.0.0.1";
  const errorBody = opts.errorBody ?? ((message: string) => ({ message }));
  const closing = new AbortController();
  const server: Server = createServer((req, res) => {
    void (async () => {
      try {
        const rawBody = await readBody(req);
        const { path, query } = splitTarget(req.url ?? "/");
        const out = await handler(
          {
            method: (req.method ?? "GET").toUpperCase(),
            path,
            query,
            headers: req.headers,
            rawBody,
            text: rawBody.toString("utf8"),
          },
          closing.signal,
        );
        if (out === DROP_CONNECTION) {
          req.socket.destroy();
          return;
        }
        write(res, out);
      } catch (err) {
        if (res.headersSent || res.destroyed) return;
        write(res, json(500, errorBody(err instanceof Error ? err.message : String(err))));
      }
    })();
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    url: `http://${host}:${addr.port}`,
    port: addr.port,
    close: () =>
      new Promise<void>((resolve) => {
        closing.abort();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
