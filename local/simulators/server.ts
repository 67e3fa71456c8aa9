/**
 * A tiny HTTP server shared by the local simulators (Supabase, Loops, Stripe, ARM).
 * Simulators speak the real services' wire protocols over plain HTTP on loopback.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface SimRequest {
  method: string;
  /** Path without the query string, e.g. `/v1/projects`. */
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

export type SimHandler = (req: SimRequest) => Promise<SimResponse> | SimResponse;

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

/** Starts a simulator on 127.0.0.1. `port` 0 picks a free port. */
export async function startSimServer(
  handler: SimHandler,
  port = 0,
  host = "127.0.0.1",
): Promise<RunningServer> {
  const server: Server = createServer((req, res) => {
    void (async () => {
      try {
        const rawBody = await readBody(req);
        // Prefix the origin by hand: a path starting with "//" must not be read as a host.
        const url = new URL(`http://localhost${req.url ?? "/"}`);
        const out = await handler({
          method: (req.method ?? "GET").toUpperCase(),
          path: url.pathname,
          query: url.searchParams,
          headers: req.headers,
          rawBody,
          text: rawBody.toString("utf8"),
        });
        write(res, out);
      } catch (err) {
        write(res, json(500, { message: err instanceof Error ? err.message : String(err) }));
      }
    })();
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    url: `http://${host}:${addr.port}`,
    port: addr.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
