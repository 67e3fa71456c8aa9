/**
 * Transport pieces of the ARM simulator: a loopback listener that can also drop a connection
 * without answering (for the "timeout" fault), and an SDK `HttpClient` that carries requests the
 * Azure SDK clients address to `https://management.azure.com` over plain HTTP to the simulator.
 */
import { Agent, createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  createDefaultHttpClient,
  createHttpHeaders,
  createPipelineRequest,
  type HttpClient,
  type PipelineRequest,
  type PipelineResponse,
} from "@azure/core-rest-pipeline";
import { json, readBody, type RunningServer, type SimRequest, type SimResponse } from "./server.js";

/** Returned by a handler to close the socket without writing a response. */
export const DROP_CONNECTION: unique symbol = Symbol("drop-connection");

/** `signal` aborts when the server is closing, so handlers holding a request can give up. */
export type DroppableHandler = (
  req: SimRequest,
  signal: AbortSignal,
) => Promise<SimResponse | typeof DROP_CONNECTION>;

function writeResponse(res: ServerResponse, out: SimResponse): void {
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

/**
 * Like `startSimServer` from `server.ts`, plus the ability to drop a connection (the shared
 * helper has no access to the socket) and an abort signal for handlers that hold requests.
 */
export async function startDroppableServer(
  handler: DroppableHandler,
  port = 0,
  host = "127.0.0.1",
): Promise<RunningServer> {
  const closing = new AbortController();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
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
        writeResponse(res, out);
      } catch (err) {
        if (res.headersSent || res.destroyed) return;
        const message = err instanceof Error ? err.message : String(err);
        writeResponse(res, json(500, { error: { code: "InternalServerError", message } }));
      }
    })();
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  return {
    url: `http://${host}:${addr.port}`,
    port: addr.port,
    close: () =>
      new Promise<void>((resolve) => {
        closing.abort();
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}

/**
 * An SDK transport for the ARM simulator. The SDK clients keep an `https://` endpoint (their
 * bearer-token policy refuses anything else); this client sends each request, whatever its host,
 * to the simulator over plain HTTP with the same method, path, query, headers and body. The
 * original host travels in the `Host` header so the simulator hands out polling URLs on it.
 * Errors, time-outs and aborts behave as with the SDK's default client (`RestError` with the
 * socket error code, `AbortError`), so the SDK retry policies react as they would in Azure.
 */
export function armSimulatorHttpClient(simUrl: string): HttpClient {
  const origin = new URL(simUrl).origin;
  const inner = createDefaultHttpClient();
  // A fresh connection per request: no stale keep-alive sockets racing the server's idle timeout.
  const agent = new Agent({ keepAlive: false });
  return {
    async sendRequest(request: PipelineRequest): Promise<PipelineResponse> {
      const original = new URL(request.url);
      const headers = createHttpHeaders(request.headers.toJSON({ preserveCase: true }));
      headers.set("Host", original.host);
      const forwarded = createPipelineRequest({
        url: `${origin}${original.pathname}${original.search}`,
        method: request.method,
        headers,
        timeout: request.timeout,
        requestId: request.requestId,
        abortSignal: request.abortSignal,
        agent,
        ...(request.body !== undefined ? { body: request.body } : {}),
        ...(request.streamResponseStatusCodes
          ? { streamResponseStatusCodes: request.streamResponseStatusCodes }
          : {}),
      });
      forwarded.allowInsecureConnection = true;
      if (request.onUploadProgress) forwarded.onUploadProgress = request.onUploadProgress;
      if (request.onDownloadProgress) forwarded.onDownloadProgress = request.onDownloadProgress;
      const response = await inner.sendRequest(forwarded);
      // The SDK (and its long-running-operation pollers) must keep seeing the URL it asked for.
      return { ...response, request };
    },
  };
}
