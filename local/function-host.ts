/**
 * Serves the app's function definitions the way the Azure Functions host does, over plain Node:
 * HTTP routes under `/api` with auth levels, Service Bus queue triggers (complete on success,
 * abandon on throw, sessions honoured), timers on their schedule, and the host's admin API
 * `POST /admin/functions/{name}` to run a non-HTTP function now.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

// @azure/functions is CommonJS without statically detectable named exports: take the default.
import azureFunctions, { type Cookie, type Timer } from "@azure/functions";

import { queueEntityPath, type FunctionDefinition, type HttpDefinition } from "../lib/functions.js";
import type { Services } from "../lib/services.js";
import { parseSchedule } from "./cron.js";
import { runQueueTrigger } from "./service-bus/runner.js";

const { HttpRequest, HttpResponse, InvocationContext } = azureFunctions;

export type LogFn = (level: "info" | "warn" | "error", message: string) => void;

export interface FunctionHostOptions {
  port: number;
  host?: string;
  /** The host's master key: required for `authLevel: admin` routes and the admin API. */
  adminKey: string;
  /** The default function key: accepted for `authLevel: function` routes. */
  functionKey: string;
  /** Extra routes outside `/api` (e.g. sandbox helpers); return false when not handled. */
  extraRoutes?: (req: IncomingMessage, res: ServerResponse, body: Buffer) => Promise<boolean>;
  runQueues?: boolean;
  runTimers?: boolean;
  log?: LogFn;
}

export interface FunctionHost {
  url: string;
  port: number;
  /** Runs a timer or queue definition now (what `POST /admin/functions/{name}` does). */
  invoke(name: string, input?: unknown): Promise<void>;
  close(): Promise<void>;
}

interface CompiledRoute {
  def: HttpDefinition;
  regex: RegExp;
  names: string[];
}

export type RouteMatch =
  | { kind: "match"; def: HttpDefinition; params: Record<string, string> }
  | { kind: "method_not_allowed" }
  | { kind: "not_found" };

/** Matches `/api/...` paths against the definitions' routes, as the Functions host does. */
export function createRouter(definitions: readonly FunctionDefinition[]) {
  const routes = definitions
    .filter((d): d is HttpDefinition => d.kind === "http")
    .map(compileRoute);
  return (method: string, pathname: string): RouteMatch => {
    let matchedPath = false;
    for (const route of routes) {
      const m = route.regex.exec(pathname);
      if (!m) continue;
      matchedPath = true;
      if (!route.def.methods.includes(method.toUpperCase() as never)) continue;
      const params: Record<string, string> = {};
      route.names.forEach((n, i) => {
        const v = m[i + 1];
        if (v !== undefined) params[n] = decodeURIComponent(v);
      });
      return { kind: "match", def: route.def, params };
    }
    return { kind: matchedPath ? "method_not_allowed" : "not_found" };
  };
}

function compileRoute(def: HttpDefinition): CompiledRoute {
  const names: string[] = [];
  const pattern = def.route
    .split("/")
    .map((segment) => {
      const m = /^\{(\*?)([A-Za-z_]\w*)(?::(\w+))?(\?)?\}$/.exec(segment);
      if (!m) return "/" + segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      const [, star, name = "", constraint, optional] = m;
      names.push(name);
      const body = star ? "(.*)" : constraint === "int" ? "(-?\\d+)" : "([^/]+)";
      return optional || star ? `(?:/${body})?` : `/${body}`;
    })
    .join("");
  return { def, regex: new RegExp(`^/api${pattern}/?$`, "i"), names };
}

export function serializeCookie(c: Cookie): string {
  const parts = [`${c.name}=${c.value}`];
  if (c.path) parts.push(`Path=${c.path}`);
  if (c.domain) parts.push(`Domain=${c.domain}`);
  if (c.maxAge !== undefined) parts.push(`Max-Age=${c.maxAge}`);
  if (c.expires) parts.push(`Expires=${new Date(c.expires).toUTCString()}`);
  if (c.secure) parts.push("Secure");
  if (c.httpOnly) parts.push("HttpOnly");
  if (c.sameSite) parts.push(`SameSite=${c.sameSite}`);
  return parts.join("; ");
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json; charset=utf-8" });
  res.end(JSON.stringify(body));
}

function keyOf(req: IncomingMessage, url: URL): string | undefined {
  const header = req.headers["x-functions-key"];
  return (Array.isArray(header) ? header[0] : header) ?? url.searchParams.get("code") ?? undefined;
}

/** The Service Bus trigger settings of host.json, as the Functions host applies them. */
export function serviceBusHostSettings(file = "host.json"): {
  maxConcurrentCalls?: number;
  maxConcurrentSessions?: number;
  sessionIdleTimeoutMs?: number;
} {
  const raw = JSON.parse(readFileSync(file, "utf8")) as {
    extensions?: { serviceBus?: Record<string, unknown> };
  };
  const sb = raw.extensions?.serviceBus ?? {};
  const out: ReturnType<typeof serviceBusHostSettings> = {};
  if (typeof sb.maxConcurrentCalls === "number") out.maxConcurrentCalls = sb.maxConcurrentCalls;
  if (typeof sb.maxConcurrentSessions === "number")
    out.maxConcurrentSessions = sb.maxConcurrentSessions;
  if (typeof sb.sessionIdleTimeout === "string") {
    const m = /^(\d+):(\d+):(\d+(?:\.\d+)?)$/.exec(sb.sessionIdleTimeout);
    if (m)
      out.sessionIdleTimeoutMs = Math.round(
        (Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3])) * 1000,
      );
  }
  return out;
}

export async function startFunctionHost(
  definitions: readonly FunctionDefinition[],
  services: Services,
  opts: FunctionHostOptions,
): Promise<FunctionHost> {
  const log: LogFn = opts.log ?? (() => undefined);
  const route = createRouter(definitions);
  const byName = new Map(definitions.map((d) => [d.name, d]));
  const stoppers: Array<() => Promise<void>> = [];

  const context = (functionName: string, triggerMetadata?: Record<string, unknown>) =>
    new InvocationContext({
      functionName,
      invocationId: randomUUID(),
      ...(triggerMetadata ? { triggerMetadata } : {}),
      logHandler: (level, ...args) => {
        const text = args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" ");
        log(
          level === "error" ? "error" : level === "warning" ? "warn" : "info",
          `[${functionName}] ${text}`,
        );
      },
    });

  async function invoke(name: string, input?: unknown): Promise<void> {
    const def = byName.get(name);
    if (!def || def.kind === "http") throw new Error(`no timer or queue function named ${name}`);
    if (def.kind === "timer") {
      const timer: Timer = {
        isPastDue: false,
        schedule: { adjustForDST: false },
        scheduleStatus: { last: "", next: "", lastUpdated: "" },
      };
      await def.handler(timer, context(name), services);
    } else {
      await def.handler(
        input,
        context(name, { deliveryCount: 1, messageId: randomUUID() }),
        services,
      );
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const url = new URL(req.url ?? "/", `http://${req.headers.host ?? "localhost"}`);
    const method = (req.method ?? "GET").toUpperCase();

    if (url.pathname.startsWith("/admin/functions/") && method === "POST") {
      if (keyOf(req, url) !== opts.adminKey) {
        sendJson(res, 401, {
          error: { code: "unauthenticated", message: "The master key is required." },
        });
        return;
      }
      const name = decodeURIComponent(url.pathname.slice("/admin/functions/".length));
      let input: unknown;
      try {
        input = body.length
          ? (JSON.parse(body.toString()) as { input?: unknown }).input
          : undefined;
      } catch {
        sendJson(res, 400, { error: { code: "bad_request", message: "Body must be JSON." } });
        return;
      }
      const def = byName.get(name);
      if (!def || def.kind === "http") {
        sendJson(res, 404, {
          error: { code: "not_found", message: `No timer or queue function ${name}.` },
        });
        return;
      }
      try {
        await invoke(name, input);
        res.writeHead(202).end();
      } catch (err) {
        log("error", `[${name}] failed: ${err instanceof Error ? err.message : String(err)}`);
        sendJson(res, 500, {
          error: { code: "internal", message: "The function failed; see the host log." },
        });
      }
      return;
    }

    if (opts.extraRoutes && (await opts.extraRoutes(req, res, body))) return;

    const match = route(method, url.pathname);
    if (match.kind !== "match") {
      sendJson(res, match.kind === "method_not_allowed" ? 405 : 404, {
        error:
          match.kind === "method_not_allowed"
            ? { code: "method_not_allowed", message: `${method} is not allowed here.` }
            : { code: "not_found", message: "No such route." },
      });
      return;
    }
    const { def, params } = match;
    if (def.authLevel !== "anonymous") {
      const key = keyOf(req, url);
      const allowed =
        def.authLevel === "admin"
          ? key === opts.adminKey
          : key === opts.adminKey || key === opts.functionKey;
      if (!allowed) {
        sendJson(res, 401, {
          error: { code: "unauthenticated", message: "A function key is required." },
        });
        return;
      }
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(", ") : v;
    }
    const request = new HttpRequest({
      method,
      url: url.toString(),
      headers,
      params,
      ...(body.length && method !== "GET" && method !== "HEAD" ? { body: { bytes: body } } : {}),
    });
    const started = performance.now();
    const init = await def.handler(request, context(def.name), services);
    const response = new HttpResponse(init);
    const outHeaders: Record<string, string | string[]> = {};
    response.headers.forEach((v, k) => {
      outHeaders[k] = v;
    });
    const cookies = response.cookies.map(serializeCookie);
    if (cookies.length) outHeaders["set-cookie"] = cookies;
    const payload = Buffer.from(await response.arrayBuffer());
    res.writeHead(response.status, outHeaders);
    res.end(payload);
    log(
      "info",
      `${method} ${url.pathname} ${response.status} ${Math.round(performance.now() - started)}ms`,
    );
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log(
        "error",
        `host error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
      );
      if (!res.headersSent)
        sendJson(res, 500, { error: { code: "internal", message: "Host error." } });
      else res.end();
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host ?? "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  if (opts.runQueues ?? true) {
    const client = await services.bus.client();
    const settings = serviceBusHostSettings();
    for (const def of definitions) {
      if (def.kind !== "serviceBusQueue") continue;
      const runner = runQueueTrigger({
        client,
        functionName: def.name,
        queueName: queueEntityPath(def, services.config[def.queueSetting]),
        isSessionsEnabled: def.subQueue === "deadLetter" ? false : def.isSessionsEnabled,
        handler: async (message, ctx) => def.handler(message, ctx, services),
        log: (level, msg) => log(level, `[${def.name}] ${msg}`),
        ...settings,
      });
      stoppers.push(() => runner.stop());
    }
  }

  if (opts.runTimers ?? true) {
    for (const def of definitions) {
      if (def.kind !== "timer") continue;
      const schedule = parseSchedule(def.schedule);
      let timer: NodeJS.Timeout | undefined;
      let stopped = false;
      let running: Promise<void> = Promise.resolve();
      const arm = () => {
        if (stopped) return;
        const delay = Math.max(0, schedule.next(new Date()).getTime() - Date.now());
        timer = setTimeout(() => {
          running = invoke(def.name)
            .catch((err: unknown) =>
              log(
                "error",
                `[${def.name}] failed: ${err instanceof Error ? err.message : String(err)}`,
              ),
            )
            .finally(arm);
        }, delay);
        timer.unref();
      };
      arm();
      stoppers.push(async () => {
        stopped = true;
        clearTimeout(timer);
        await running;
      });
    }
  }

  return {
    url: `http://${opts.host ?? "127.0.0.1"}:${port}`,
    port,
    invoke,
    async close() {
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
      await Promise.allSettled(stoppers.map((s) => s()));
    },
  };
}
