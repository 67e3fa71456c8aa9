/**
 * An app as the Functions worker loads it: the entry point (the shipped `dist/index.js`) is
 * imported with the `@azure/functions-core` stand-in in place, its registrations are indexed with
 * the host's rules, and each function is invoked through the programming model with trigger data
 * shaped as the host sends it.
 */
import { cpSync, rmSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

import type { FunctionDefinition } from "../../lib/functions.js";
import type { Services } from "../../lib/services.js";
import {
  captureRegistrations,
  invokeRegistered,
  terminateRegistry,
  type RegisteredFunction,
  type Registry,
  type RpcBindingInfo,
  type RpcInvocationResponse,
  type WorkerLog,
} from "./core-api.js";
import type { TriggerInput } from "./host-data.js";

export interface IndexedFunction {
  name: string;
  /** The trigger binding's name (the library adds a random suffix per start). */
  bindingName: string;
  trigger: RpcBindingInfo;
  registered: RegisteredFunction;
}

export interface WorkerApp {
  functions: readonly IndexedFunction[];
  invoke(name: string, input: TriggerInput): Promise<RpcInvocationResponse>;
  /** What the worker does when the host terminates it (the app's `appTerminate` hooks). */
  terminate(): Promise<void>;
}

/** A string property of a binding (route, queueName, schedule, authLevel), if it is one. */
export function bindingString(binding: RpcBindingInfo, key: string, fallback = ""): string {
  const v = binding[key];
  return typeof v === "string" ? v : fallback;
}

const NAME = /^[a-z][a-z0-9_-]{0,127}$/i;
const RESERVED_ROUTE = /^(admin|runtime)(\/|$)/i;

/** Indexes registrations as the host does, refusing what the host refuses at start-up. */
export function indexRegistry(registry: Registry): WorkerApp {
  const functions: IndexedFunction[] = [];
  const routes = new Map<string, string>();
  const problems: string[] = [];
  for (const registered of registry.functions.values()) {
    const { name, bindings } = registered.metadata;
    if (!NAME.test(name)) problems.push(`${name}: invalid function name`);
    const triggers = Object.entries(bindings).filter(
      ([, b]) => b.direction === "in" && b.type.toLowerCase().endsWith("trigger"),
    );
    if (triggers.length !== 1) {
      problems.push(`${name}: ${triggers.length} triggers (exactly one is allowed)`);
      continue;
    }
    const [bindingName, trigger] = triggers[0] as [string, RpcBindingInfo];
    if (trigger.type === "httpTrigger") {
      const route = bindingString(trigger, "route", name);
      if (RESERVED_ROUTE.test(route)) problems.push(`${name}: route '${route}' is reserved`);
      const methods = (trigger.methods as string[] | undefined) ?? ["GET", "POST", "PUT", "DELETE"];
      const template = route.toLowerCase().replace(/\{[^}]+\}/g, "{}");
      for (const m of methods) {
        const key = `${m.toUpperCase()} ${template}`;
        const other = routes.get(key);
        if (other) problems.push(`${name}: ${key} conflicts with ${other}`);
        routes.set(key, name);
      }
    }
    functions.push({ name, bindingName, trigger, registered });
  }
  if (problems.length)
    throw new Error(`The host refuses these functions:\n  ${problems.join("\n  ")}`);
  const byName = new Map(functions.map((f) => [f.name.toLowerCase(), f]));
  return {
    functions,
    invoke(name, input) {
      const fn = byName.get(name.toLowerCase());
      if (!fn) throw new Error(`no function named ${name}`);
      return invokeRegistered(registry, fn.registered, input);
    },
    terminate: () => terminateRegistry(registry),
  };
}

let loads = 0;

/**
 * Loads a built app (package.json `main`) as the worker does. A second load in the same process
 * gets a fresh copy of the whole bundle (a new worker process would load every chunk anew; Node
 * caches modules by URL, so the copy sits in its own folder).
 */
export async function loadWorkerApp(entry = "dist/index.js", log?: WorkerLog): Promise<WorkerApp> {
  let file = resolve(entry);
  if (loads++ > 0) {
    const copy = resolve("node_modules/.cache/supafana-worker", `${process.pid}-${loads}`);
    rmSync(copy, { recursive: true, force: true });
    cpSync(dirname(file), copy, { recursive: true });
    file = join(copy, basename(file));
  }
  const url = pathToFileURL(file);
  const registry = await captureRegistrations(() => import(url.href), log);
  return indexRegistry(registry);
}

/**
 * Registers definitions from the sources with the given services through the same programming
 * model and worker contract (integration tests and tools that need their own services).
 */
export async function registerInProcess(
  definitions: readonly FunctionDefinition[],
  services: Services,
  log?: WorkerLog,
): Promise<WorkerApp> {
  const { registerDefinitions } = await import("../../functions/register.js");
  const registry = await captureRegistrations(
    () => registerDefinitions(definitions, () => services),
    log,
  );
  return indexRegistry(registry);
}
