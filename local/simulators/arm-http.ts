/**
 * The ARM simulator's SDK transport: an `HttpClient` that carries requests the Azure SDK clients
 * address to `https://management.azure.com` over plain HTTP to the simulator.
 */
import { Agent } from "node:http";
import type { ArmTransport } from "../../lib/azure/clients.js";
import {
  createDefaultHttpClient,
  createHttpHeaders,
  createPipelineRequest,
  type HttpClient,
  type PipelineRequest,
  type PipelineResponse,
} from "@azure/core-rest-pipeline";

/** The ARM clients' transport to the simulator: a nominal `https://<simulator host>` endpoint. */
export function armSimulatorTransport(simUrl: string): ArmTransport {
  return {
    endpoint: `https://${new URL(simUrl).host}`,
    httpClient: armSimulatorHttpClient(simUrl),
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
