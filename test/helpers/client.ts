/**
 * Calls the app's HTTP handlers in-process, through the same router the local host uses, with
 * real `HttpRequest` / `InvocationContext` objects, a cookie jar, and the SPA's Origin header.
 */
import { randomUUID } from "node:crypto";

import { HttpRequest, HttpResponse, InvocationContext } from "@azure/functions";

import type { FunctionDefinition } from "../../lib/functions.js";
import type { Services } from "../../lib/services.js";
import { createRouter } from "../../local/function-host.js";
import type { ServiceBusMessageLike } from "../../local/worker/host-data.js";
import { serviceBusTriggerMetadata } from "../../local/worker/trigger-context.js";

export interface LogLine {
  level: string;
  functionName: string;
  invocationId: string;
  args: unknown[];
}

export interface TestResponse {
  status: number;
  headers: Headers;
  /** Parsed JSON body, or the text when not JSON. */
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  text: string;
  setCookies: string[];
}

export interface RequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
  /** Send no Origin header (CSRF tests). */
  noOrigin?: boolean;
}

export class TestClient {
  readonly cookies = new Map<string, string>();
  readonly logs: LogLine[] = [];
  private readonly route: ReturnType<typeof createRouter>;

  constructor(
    definitions: readonly FunctionDefinition[],
    private readonly services: Services,
  ) {
    this.route = createRouter(definitions);
  }

  /**
   * A context for a queue-triggered handler, its trigger metadata built from the message as the
   * host and `@azure/functions` deliver it in Azure.
   */
  async serviceBusContext(
    functionName: string,
    message: ServiceBusMessageLike,
    opts: { isSessionsEnabled?: boolean } = {},
  ): Promise<InvocationContext> {
    return this.context(functionName, await serviceBusTriggerMetadata(message, opts));
  }

  context(functionName: string, triggerMetadata?: Record<string, unknown>): InvocationContext {
    const invocationId = randomUUID();
    return new InvocationContext({
      functionName,
      invocationId,
      ...(triggerMetadata ? { triggerMetadata } : {}),
      logHandler: (level, ...args) => this.logs.push({ level, functionName, invocationId, args }),
    });
  }

  async request(method: string, path: string, opts: RequestOptions = {}): Promise<TestResponse> {
    const url = new URL(path, this.services.config.PUBLIC_BASE_URL);
    const match = this.route(method, url.pathname);
    if (match.kind !== "match") {
      return {
        status: match.kind === "not_found" ? 404 : 405,
        headers: new Headers(),
        body: undefined,
        text: "",
        setCookies: [],
      };
    }
    const headers: Record<string, string> = { ...opts.headers };
    if (method !== "GET" && !opts.noOrigin && !headers.origin) {
      headers.origin = new URL(this.services.config.PUBLIC_BASE_URL).origin;
    }
    if (this.cookies.size && !headers.cookie) {
      headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
    }
    let body: { string: string } | undefined;
    if (opts.body !== undefined) {
      body = { string: typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body) };
      headers["content-type"] ??= "application/json";
    }
    const req = new HttpRequest({
      method,
      url: url.toString(),
      headers,
      params: match.params,
      ...(body ? { body } : {}),
    });
    const init = await match.def.handler(req, this.context(match.def.name), this.services);
    const res = new HttpResponse(init);
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
    const setCookies = res.cookies.map((c) => `${c.name}=${c.value}`);
    for (const c of res.cookies) {
      if (c.maxAge === 0 || c.value === "") this.cookies.delete(c.name);
      else this.cookies.set(c.name, c.value);
    }
    return { status: res.status, headers: res.headers, body: parsed, text, setCookies };
  }

  get = (path: string, opts?: RequestOptions) => this.request("GET", path, opts);
  post = (path: string, opts?: RequestOptions) => this.request("POST", path, opts);
  put = (path: string, opts?: RequestOptions) => this.request("PUT", path, opts);
  delete = (path: string, opts?: RequestOptions) => this.request("DELETE", path, opts);
}
