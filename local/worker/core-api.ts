/**
 * A stand-in for `@azure/functions-core`, the module the Azure Functions Node.js worker injects
 * into the app's process (it is not an npm package). `@azure/functions` 4.x calls it to set its
 * programming model and to register every function; the worker then invokes a function by
 * handing the library an RPC-shaped invocation request and taking back an RPC-shaped response.
 *
 * This module does what the worker does with those calls (indexing, the invocation sequence with
 * pre/post invocation hooks), so that the library's own conversions (typed data, camel-cased
 * trigger metadata, cookies) run exactly as they do in Azure.
 */
import { randomUUID } from "node:crypto";
import Module from "node:module";

/** Typed data as the worker passes it (the subset of the RPC `TypedData` the host sends). */
export interface RpcTypedData {
  string?: string | null;
  json?: string | null;
  bytes?: Uint8Array | null;
  int?: number | null;
  double?: number | null;
  http?: RpcHttpData | null;
}

export interface RpcNullableString {
  value?: string | null;
}

export interface RpcHttpCookie {
  name: string;
  value: string;
  domain?: RpcNullableString | null;
  path?: RpcNullableString | null;
  expires?: { value?: { seconds?: number | string | null; nanos?: number | null } | null } | null;
  secure?: { value?: boolean | null } | null;
  httpOnly?: { value?: boolean | null } | null;
  sameSite?: "none" | "lax" | "strict" | "explicitNone" | null;
  maxAge?: { value?: number | null } | null;
}

export interface RpcHttpData {
  method?: string | null;
  url?: string | null;
  headers?: Record<string, string> | null;
  nullableHeaders?: Record<string, RpcNullableString> | null;
  query?: Record<string, string> | null;
  nullableQuery?: Record<string, RpcNullableString> | null;
  params?: Record<string, string> | null;
  nullableParams?: Record<string, RpcNullableString> | null;
  body?: RpcTypedData | null;
  statusCode?: string | null;
  cookies?: RpcHttpCookie[] | null;
  identities?: unknown[] | null;
}

export interface RpcParameterBinding {
  name: string;
  data: RpcTypedData;
}

export interface RpcInvocationRequest {
  invocationId: string;
  functionId: string;
  inputData: RpcParameterBinding[];
  triggerMetadata: Record<string, RpcTypedData>;
  traceContext: { traceParent: string; traceState: string; attributes: Record<string, string> };
  retryContext?: { retryCount: number; maxRetryCount: number };
}

export interface RpcInvocationResponse {
  invocationId: string;
  outputData?: Array<{ name: string; data: RpcTypedData }>;
  returnValue?: RpcTypedData | null;
}

export interface RpcBindingInfo {
  type: string;
  direction: "in" | "out" | "inout";
  [key: string]: unknown;
}

export interface FunctionMetadata {
  name: string;
  functionId?: string;
  bindings: Record<string, RpcBindingInfo>;
  [key: string]: unknown;
}

export type FunctionCallback = (...args: unknown[]) => unknown;

type LogLevel = "trace" | "debug" | "information" | "warning" | "error" | "critical" | "none";

interface CoreInvocationContext {
  invocationId: string;
  request: RpcInvocationRequest;
  metadata: FunctionMetadata;
  state?: "preInvocationHooks" | "postInvocationHooks" | "invocation";
  log(level: LogLevel, category: "user" | "system" | "customMetric", message: string): void;
}

interface InvocationModel {
  getArguments(): Promise<{ context: unknown; inputs: unknown[] }>;
  invokeFunction(context: unknown, inputs: unknown[], callback: FunctionCallback): Promise<unknown>;
  getResponse(context: unknown, result: unknown): Promise<RpcInvocationResponse>;
}

export interface ProgrammingModel {
  name: string;
  version: string;
  getInvocationModel(ctx: CoreInvocationContext): InvocationModel;
  getCapabilities?(capabilities: Record<string, string>): Promise<Record<string, string>>;
}

/** A function as the worker indexed it. */
export interface RegisteredFunction {
  metadata: FunctionMetadata;
  callback: FunctionCallback;
  model: ProgrammingModel;
}

export type WorkerLog = (
  level: LogLevel,
  category: string,
  message: string,
  invocationId?: string,
) => void;

interface Hook {
  name: string;
  callback: (ctx: Record<string, unknown>) => unknown;
}

/** The registrations of one app load. */
export class Registry {
  readonly functions = new Map<string, RegisteredFunction>();
  readonly hooks: Hook[] = [];
  locked = false;
  log: WorkerLog = () => undefined;
}

class Disposable {
  constructor(private readonly fn: () => void) {}
  dispose(): void {
    this.fn();
  }
}

/** The capabilities the worker (3.9.x) announces to the host before the library adds its own. */
export const WORKER_CAPABILITIES: Readonly<Record<string, string>> = {
  RawHttpBodyBytes: "true",
  RpcHttpTriggerMetadataRemoved: "true",
  RpcHttpBodyOnly: "true",
  IgnoreEmptyValuedRpcHttpHeaders: "true",
  UseNullableValueDictionaryForHttp: "true",
  WorkerStatus: "true",
  TypedDataCollection: "true",
  HandlesWorkerTerminateMessage: "true",
};

let current: Registry | undefined;
let programmingModel: ProgrammingModel | undefined;
let installed = false;

function active(): Registry {
  if (!current) throw new Error("A function can only be registered during app start-up.");
  return current;
}

const coreApi = {
  version: "3.9.1",
  hostVersion: "4.1037.0",
  setProgrammingModel(model: ProgrammingModel): void {
    programmingModel = model;
  },
  getProgrammingModel: (): ProgrammingModel | undefined => programmingModel,
  registerFunction(metadata: FunctionMetadata, callback: FunctionCallback): Disposable {
    const registry = active();
    if (registry.locked) throw new Error("A function can only be registered during app start-up.");
    if (!programmingModel) throw new Error("No programming model was set before registering.");
    const id = metadata.functionId ?? metadata.name;
    if (registry.functions.has(id)) {
      throw new Error(`A function with id "${id}" has already been registered.`);
    }
    registry.functions.set(id, { metadata, callback, model: programmingModel });
    return new Disposable(() => registry.functions.delete(id));
  },
  registerHook(name: string, callback: Hook["callback"]): Disposable {
    const registry = active();
    const hook = { name, callback };
    registry.hooks.push(hook);
    return new Disposable(() => {
      const i = registry.hooks.indexOf(hook);
      if (i >= 0) registry.hooks.splice(i, 1);
    });
  },
  log(level: LogLevel, category: string, message: string): void {
    current?.log(level, category, message);
  },
  Disposable,
};

/** Makes `require("@azure/functions-core")` answer the stand-in, as the worker's require hook does. */
export function installCoreApi(): void {
  if (installed) return;
  installed = true;
  const proto = Module.prototype as unknown as { require: (id: string) => unknown };
  proto.require = new Proxy(proto.require, {
    apply(target, thisArg, args: unknown[]) {
      if (args[0] === "@azure/functions-core") return coreApi;
      return Reflect.apply(target, thisArg, args) as unknown;
    },
  });
}

/**
 * Runs `load` (importing an app entry point, or registering definitions) with a fresh registry
 * receiving its registrations; then locks the registry and asks the programming model for its
 * capabilities, as the worker does once indexing is over.
 */
export async function captureRegistrations(
  load: () => unknown,
  log: WorkerLog = () => undefined,
): Promise<Registry> {
  installCoreApi();
  const registry = new Registry();
  registry.log = log;
  const previous = current;
  current = registry;
  try {
    await load();
  } finally {
    current = previous;
  }
  registry.locked = true;
  const models = new Set([...registry.functions.values()].map((f) => f.model));
  for (const model of models) await model.getCapabilities?.({ ...WORKER_CAPABILITIES });
  return registry;
}

async function runHooks(registry: Registry, name: string, ctx: Record<string, unknown>) {
  for (const hook of registry.hooks.filter((h) => h.name === name)) await hook.callback(ctx);
}

/** Runs the app's `appTerminate` hooks, as the worker does when the host terminates it. */
export async function terminateRegistry(registry: Registry): Promise<void> {
  await runHooks(registry, "appTerminate", { hookData: {}, appHookData: {} });
}

/**
 * Invokes a registered function the way the worker's invocation handler does: the programming
 * model turns the RPC request into the handler's arguments, pre-invocation hooks, the handler,
 * post-invocation hooks, then the model turns the result into the RPC response. A handler that
 * throws makes the invocation fail (the promise rejects), as the worker reports it to the host.
 */
export async function invokeRegistered(
  registry: Registry,
  fn: RegisteredFunction,
  input: { inputData: RpcParameterBinding[]; triggerMetadata: Record<string, RpcTypedData> },
  invocationId: string = randomUUID(),
): Promise<RpcInvocationResponse> {
  const request: RpcInvocationRequest = {
    invocationId,
    functionId: fn.metadata.functionId ?? fn.metadata.name,
    inputData: input.inputData,
    triggerMetadata: input.triggerMetadata,
    traceContext: {
      traceParent: `00-${randomUUID().replace(/-/g, "")}-${randomUUID().replace(/-/g, "").slice(0, 16)}-00`,
      traceState: "",
      attributes: {},
    },
  };
  const coreCtx: CoreInvocationContext = {
    invocationId,
    request,
    metadata: fn.metadata,
    log: (level, category, message) =>
      registry.log(level, `${fn.metadata.name}.Invocation:${category}`, message, invocationId),
  };
  const model = fn.model.getInvocationModel(coreCtx);
  const hookData: Record<string, unknown> = {};
  const { context, inputs: initialInputs } = await model.getArguments();
  const pre: Record<string, unknown> = {
    hookData,
    appHookData: {},
    invocationContext: context,
    functionCallback: fn.callback,
    inputs: initialInputs,
  };
  coreCtx.state = "preInvocationHooks";
  try {
    await runHooks(registry, "preInvocation", pre);
  } finally {
    delete coreCtx.state;
  }
  const inputs = pre.inputs as unknown[];
  const callback = pre.functionCallback as FunctionCallback;
  const post: Record<string, unknown> = {
    hookData,
    appHookData: {},
    invocationContext: context,
    inputs,
    result: null,
    error: null,
  };
  coreCtx.state = "invocation";
  try {
    post.result = await model.invokeFunction(context, inputs, callback);
  } catch (err) {
    post.error = err;
  } finally {
    delete coreCtx.state;
  }
  coreCtx.state = "postInvocationHooks";
  try {
    await runHooks(registry, "postInvocation", post);
  } finally {
    delete coreCtx.state;
  }
  if (post.error instanceof Error) throw post.error;
  if (post.error) throw new Error(`invocation failed: ${JSON.stringify(post.error)}`);
  return model.getResponse(context, post.result);
}
