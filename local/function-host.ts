/**
 * Serves an app the way the Azure Functions host does, over plain Node: the functions the worker
 * indexed (HTTP routes under `/api` with auth levels, Service Bus queue triggers that complete on
 * success and abandon on a failed invocation with sessions honoured, timers on their schedule)
 * and the host's admin API `POST /admin/functions/{name}` to run a non-HTTP function now. Every
 * invocation goes through the worker contract (`local/worker/`) with the host's trigger data.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

import type { ServiceBusClient } from "@azure/service-bus";

import type { FunctionDefinition, HttpDefinition } from "../lib/functions.js";
import type { Services } from "../lib/services.js";
import { parseSchedule } from "./cron.js";
import { runQueueTrigger } from "./service-bus/runner.js";
import {
  bindingString,
  registerInProcess,
  type IndexedFunction,
  type WorkerApp,
} from "./worker/app.js";
import {
  decodeRouteValue,
  httpTriggerInput,
  serviceBusTriggerInput,
  timerTriggerInput,
  writeHttpResult,
} from "./worker/host-data.js";

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

export interface AppHostOptions extends FunctionHostOptions {
  /** App settings: `%NAME%` in bindings resolves against these. */
  settings: Readonly<Record<string, unknown>>;
  /** The host's Service Bus client (the extension's own connection). */
  serviceBus: () => Promise<ServiceBusClient>;
}

export interface FunctionHost {
  url: string;
  port: number;
  /** Runs a timer or queue definition now (what `POST /admin/functions/{name}` does). */
  invoke(name: string, input?: unknown): Promise<void>;
  close(): Promise<void>;
}

interface CompiledRoute<T> {
  def: T;
  regex: RegExp;
  names: string[];
}

export type RouteMatch<T = HttpDefinition> =
  | { kind: "match"; def: T; params: Record<string, string> }
  | { kind: "method_not_allowed" }
  | { kind: "not_found" };

/** Matches `/api/...` paths against compiled routes, as the Functions host does. */
function matchRoute<T extends { methods: readonly string[] }>(
  routes: ReadonlyArray<CompiledRoute<T>>,
  method: string,
  pathname: string,
): RouteMatch<T> {
  let matchedPath = false;
  for (const route of routes) {
    const m = route.regex.exec(pathname);
    if (!m) continue;
    matchedPath = true;
    if (!route.def.methods.includes(method.toUpperCase())) continue;
    const params: Record<string, string> = {};
    route.names.forEach((n, i) => {
      const v = m[i + 1];
      if (v !== undefined) params[n] = decodeRouteValue(v);
    });
    return { kind: "match", def: route.def, params };
  }
  return { kind: matchedPath ? "method_not_allowed" : "not_found" };
}

/** Matches `/api/...` paths against the definitions' routes, as the Functions host does. */
export function createRouter(definitions: readonly FunctionDefinition[]) {
  const routes = definitions
    .filter((d): d is HttpDefinition => d.kind === "http")
    .map((d) => compileRoute(d, d.route));
  return (method: string, pathname: string): RouteMatch => matchRoute(routes, method, pathname);
}

function compileRoute<T>(def: T, route: string): CompiledRoute<T> {
  const names: string[] = [];
  const pattern = route
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

export async function readBody(req: IncomingMessage): Promise<Buffer> {
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

/** Resolves `%SETTING%` references in a binding value from the app settings, as the host does. */
export function resolveSettings(
  value: string,
  settings: Readonly<Record<string, unknown>>,
): string {
  return value.replace(/%([^%]+)%/g, (_, name: string) => {
    const v = settings[name];
    if (typeof v !== "string" || v === "") throw new Error(`app setting ${name} is not set`);
    return v;
  });
}

interface HttpFunction {
  fn: IndexedFunction;
  methods: string[];
  authLevel: string;
}

/** Serves a worker-indexed app (the shipped bundle, or definitions registered in-process). */
export async function serveApp(app: WorkerApp, opts: AppHostOptions): Promise<FunctionHost> {
  const log: LogFn = opts.log ?? (() => undefined);
  const stoppers: Array<() => Promise<void>> = [];
  const byName = new Map(app.functions.map((f) => [f.name.toLowerCase(), f]));
  const httpRoutes = app.functions
    .filter((f) => f.trigger.type === "httpTrigger")
    .map((fn) =>
      compileRoute<HttpFunction>(
        {
          fn,
          methods: ((fn.trigger.methods as string[] | undefined) ?? ["GET", "POST"]).map((m) =>
            m.toUpperCase(),
          ),
          authLevel: bindingString(fn.trigger, "authLevel", "function").toLowerCase(),
        },
        bindingString(fn.trigger, "route", fn.name),
      ),
    );

  const queueBinding = (fn: IndexedFunction) => {
    const entity = resolveSettings(bindingString(fn.trigger, "queueName"), opts.settings);
    const deadLetter = entity.endsWith("/$DeadLetterQueue");
    return {
      entity,
      isSessionsEnabled: !deadLetter && fn.trigger.isSessionsEnabled === true,
    };
  };

  const scheduleOf = (fn: IndexedFunction) =>
    parseSchedule(resolveSettings(bindingString(fn.trigger, "schedule"), opts.settings));

  async function invoke(name: string, input?: unknown): Promise<void> {
    const fn = byName.get(name.toLowerCase());
    if (!fn || fn.trigger.type === "httpTrigger") {
      throw new Error(`no timer or queue function named ${name}`);
    }
    if (fn.trigger.type === "timerTrigger") {
      const now = new Date();
      await app.invoke(
        fn.name,
        timerTriggerInput({ bindingName: fn.bindingName, next: scheduleOf(fn).next(now) }),
      );
    } else {
      await app.invoke(
        fn.name,
        serviceBusTriggerInput(
          {
            body: input,
            messageId: randomUUID(),
            deliveryCount: 0,
            enqueuedTimeUtc: new Date(),
            contentType: "application/json",
          },
          { bindingName: fn.bindingName, isSessionsEnabled: false },
        ),
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
      const name = decodeRouteValue(url.pathname.slice("/admin/functions/".length));
      let input: unknown;
      try {
        input = body.length
          ? (JSON.parse(body.toString()) as { input?: unknown }).input
          : undefined;
      } catch {
        sendJson(res, 400, { error: { code: "bad_request", message: "Body must be JSON." } });
        return;
      }
      const fn = byName.get(name.toLowerCase());
      if (!fn || fn.trigger.type === "httpTrigger") {
        sendJson(res, 404, {
          error: { code: "not_found", message: "No timer or queue function of that name." },
        });
        return;
      }
      try {
        await invoke(fn.name, input);
        res.writeHead(202).end();
      } catch (err) {
        log("error", `[${fn.name}] failed: ${err instanceof Error ? err.message : String(err)}`);
        sendJson(res, 500, {
          error: { code: "internal", message: "The function failed; see the host log." },
        });
      }
      return;
    }

    if (opts.extraRoutes && (await opts.extraRoutes(req, res, body))) return;

    const found = matchRoute(httpRoutes, method, url.pathname);
    if (found.kind !== "match") {
      sendJson(res, found.kind === "method_not_allowed" ? 405 : 404, {
        error:
          found.kind === "method_not_allowed"
            ? { code: "method_not_allowed", message: `${method} is not allowed here.` }
            : { code: "not_found", message: "No such route." },
      });
      return;
    }
    const { def: route, params } = found;
    if (route.authLevel !== "anonymous") {
      const key = keyOf(req, url);
      const allowed =
        route.authLevel === "admin"
          ? key === opts.adminKey
          : key === opts.adminKey || key === opts.functionKey;
      if (!allowed) {
        sendJson(res, 401, {
          error: { code: "unauthenticated", message: "A function key is required." },
        });
        return;
      }
    }
    const started = performance.now();
    const input = httpTriggerInput({
      bindingName: route.fn.bindingName,
      method,
      url,
      headers: req.headers,
      params,
      body,
    });
    let status: number;
    try {
      const response = await app.invoke(route.fn.name, input);
      status = writeHttpResult(res, response.returnValue);
    } catch (err) {
      // A failed invocation: the host answers 500 with no body.
      log(
        "error",
        `[${route.fn.name}] invocation failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
      );
      status = 500;
      if (!res.headersSent) res.writeHead(500, { "content-length": "0" }).end();
    }
    log("info", `${method} ${url.pathname} ${status} ${Math.round(performance.now() - started)}ms`);
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
    const queueFns = app.functions.filter((f) => f.trigger.type === "serviceBusTrigger");
    if (queueFns.length) {
      const client = await opts.serviceBus();
      const settings = serviceBusHostSettings();
      for (const fn of queueFns) {
        const binding = queueBinding(fn);
        const runner = runQueueTrigger({
          client,
          functionName: fn.name,
          queueName: binding.entity,
          isSessionsEnabled: binding.isSessionsEnabled,
          handler: (message) =>
            app.invoke(
              fn.name,
              serviceBusTriggerInput(message, {
                bindingName: fn.bindingName,
                isSessionsEnabled: binding.isSessionsEnabled,
              }),
            ),
          log: (level, msg) => log(level, `[${fn.name}] ${msg}`),
          ...settings,
        });
        stoppers.push(() => runner.stop());
      }
    }
  }

  if (opts.runTimers ?? true) {
    for (const fn of app.functions) {
      if (fn.trigger.type !== "timerTrigger") continue;
      const schedule = scheduleOf(fn);
      let timer: NodeJS.Timeout | undefined;
      let stopped = false;
      let running: Promise<void> = Promise.resolve();
      const arm = () => {
        if (stopped) return;
        const delay = Math.max(0, schedule.next(new Date()).getTime() - Date.now());
        timer = setTimeout(() => {
          running = invoke(fn.name)
            .catch((err: unknown) =>
              log(
                "error",
                `[${fn.name}] failed: ${err instanceof Error ? err.message : String(err)}`,
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

/** How each queue function binds, as the host prints it (dead letters as `<queue>/$DeadLetterQueue`). */
export function describeBindings(
  app: WorkerApp,
  settings: Readonly<Record<string, unknown>>,
): string[] {
  return app.functions.map((fn) => {
    const t = fn.trigger;
    if (t.type === "httpTrigger") {
      const methods = ((t.methods as string[] | undefined) ?? []).join(",");
      const level = bindingString(t, "authLevel", "function").toLowerCase();
      return `  http   ${methods.padEnd(12)} /api/${bindingString(t, "route")}${level === "anonymous" ? "" : `  [${level} key]`}`;
    }
    if (t.type === "timerTrigger") {
      return `  timer  ${fn.name} (${bindingString(t, "schedule")})  POST /admin/functions/${fn.name}`;
    }
    return `  queue  ${fn.name} <- ${resolveSettings(bindingString(t, "queueName"), settings)}${t.isSessionsEnabled ? " (sessions)" : ""}`;
  });
}

/**
 * Registers definitions from the sources with the given services (through the worker contract,
 * like the shipped bundle) and serves them: integration tests and tools that need their own
 * services (a clock, a table prefix, a test nginx).
 */
export async function startFunctionHost(
  definitions: readonly FunctionDefinition[],
  services: Services,
  opts: FunctionHostOptions,
): Promise<FunctionHost> {
  const app = await registerInProcess(definitions, services, workerLog(opts.log));
  return serveApp(app, {
    ...opts,
    settings: services.config,
    serviceBus: () => services.bus.client(),
  });
}

/** The worker's log lines into the host's log (user logs of invocations at their level). */
export function workerLog(log: LogFn | undefined) {
  return (level: string, category: string, message: string) => {
    if (!log || category.endsWith(":system")) return;
    const mapped =
      level === "error" || level === "critical" ? "error" : level === "warning" ? "warn" : "info";
    const fn = category.split(".Invocation")[0];
    log(mapped, `[${fn}] ${message}`);
  };
}
