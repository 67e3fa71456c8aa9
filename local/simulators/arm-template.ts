/**
 * The compiled ARM template as the contract of the ARM simulator's deployments.
 *
 * `bicep/compiled/grafana-host.json` is what `bicep build bicep/grafana-host.bicep` produces
 * (`npm run bicep:check` keeps it fresh). A deployment PUT is checked against the template's
 * `parameters` as ARM checks it (names, types, required, allowed values, lengths and ranges),
 * default values are evaluated, and the deployment answers with the template's declared
 * `outputs`, evaluated against the simulated resources. Expressions are evaluated by a small
 * interpreter of the ARM template language that knows the functions these templates use; any
 * other function is an error that names it, never a silent guess.
 */
import { readFileSync } from "node:fs";

export const GRAFANA_HOST_TEMPLATE_URL = new URL(
  "../../bicep/compiled/grafana-host.json",
  import.meta.url,
);

export interface TemplateParameter {
  type: string;
  defaultValue?: unknown;
  allowedValues?: unknown[];
  minLength?: number;
  maxLength?: number;
  minValue?: number;
  maxValue?: number;
}

export interface TemplateOutput {
  type: string;
  value?: unknown;
}

export interface ArmTemplate {
  parameters: Record<string, TemplateParameter>;
  /** Raw variable values (expressions unevaluated). */
  variables: Record<string, unknown>;
  outputs: Record<string, TemplateOutput>;
}

/** ARM's error body for template validation (`additionalInfo` as ARM sends it). */
export interface TemplateErrorBody {
  code: string;
  message: string;
  additionalInfo?: Array<{ type: string; info: Record<string, unknown> }>;
}

function asRecord(v: unknown): Record<string, unknown> | undefined {
  return typeof v === "object" && v !== null && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}

/** Reads a compiled template's parameter and output declarations; throws on another shape. */
export function parseTemplate(json: unknown): ArmTemplate {
  const t = asRecord(json);
  const params = asRecord(t?.parameters ?? {});
  const outputs = asRecord(t?.outputs ?? {});
  const variables = asRecord(t?.variables ?? {});
  if (!t || !params || !outputs || !variables) {
    throw new Error("not an ARM template: parameters/variables/outputs");
  }
  const parameters: Record<string, TemplateParameter> = {};
  for (const [name, raw] of Object.entries(params)) {
    const p = asRecord(raw);
    if (!p || typeof p.type !== "string") {
      throw new Error(`template parameter '${name}' has no type`);
    }
    parameters[name] = p as unknown as TemplateParameter;
  }
  const outs: Record<string, TemplateOutput> = {};
  for (const [name, raw] of Object.entries(outputs)) {
    const o = asRecord(raw);
    if (!o || typeof o.type !== "string") throw new Error(`template output '${name}' has no type`);
    outs[name] = o as unknown as TemplateOutput;
  }
  return { parameters, variables, outputs: outs };
}

let grafanaHost: ArmTemplate | undefined;

/** The compiled Grafana host template (read once). */
export function grafanaHostTemplate(): ArmTemplate {
  grafanaHost ??= parseTemplate(JSON.parse(readFileSync(GRAFANA_HOST_TEMPLATE_URL, "utf8")));
  return grafanaHost;
}

export const isSecureType = (type: string): boolean => /^secure(string|object)$/i.test(type);

/** A template type as ARM writes it back (`securestring` -> `SecureString`). */
export function displayType(type: string): string {
  const t = type.toLowerCase();
  const known: Record<string, string> = {
    string: "String",
    securestring: "SecureString",
    int: "Int",
    bool: "Bool",
    object: "Object",
    secureobject: "SecureObject",
    array: "Array",
  };
  return known[t] ?? type;
}

// ----- parameter validation ---------------------------------------------------------------------

/** The JSON token type of a value, in ARM's words. */
function tokenType(v: unknown): string {
  if (v === null) return "Null";
  if (typeof v === "string") return "String";
  if (typeof v === "boolean") return "Boolean";
  if (typeof v === "number") return Number.isInteger(v) ? "Integer" : "Float";
  if (Array.isArray(v)) return "Array";
  return "Object";
}

const EXPECTED: Record<string, string> = {
  string: "String",
  securestring: "String",
  int: "Integer",
  bool: "Boolean",
  object: "Object",
  secureobject: "Object",
  array: "Array",
};

const PARAMETER_FILE_HELP =
  "Please see https://aka.ms/arm-create-parameter-file for usage details.";

function invalid(message: string, parameter?: string): TemplateErrorBody {
  return {
    code: "InvalidTemplate",
    message: `Deployment template validation failed: '${message}'.`,
    ...(parameter !== undefined
      ? {
          additionalInfo: [
            {
              type: "TemplateViolation",
              info: { lineNumber: 0, linePosition: 0, path: `properties.parameters.${parameter}` },
            },
          ],
        }
      : {}),
  };
}

export interface ExpressionContext {
  subscriptionId: string;
  resourceGroup: string;
  location: string;
  /** `reference(id)`: the resource as a GET would show it, undefined when there is none. */
  lookup?: (id: string) => Record<string, unknown> | undefined;
}

export type CheckedParameters =
  { ok: true; values: Record<string, unknown> } | { ok: false; error: TemplateErrorBody };

/**
 * Checks a deployment's `properties.parameters` against the template, as ARM's template
 * validation does, and returns every parameter's effective value (defaults evaluated). A Key
 * Vault `reference` stands for a value ARM resolves later: its type is not checked here.
 */
export function checkParameters(
  template: ArmTemplate,
  given: Record<string, unknown>,
  ctx: ExpressionContext,
): CheckedParameters {
  const declared = Object.keys(template.parameters);
  const byLower = new Map(declared.map((n) => [n.toLowerCase(), n]));
  const unknown = Object.keys(given).filter((k) => !byLower.has(k.toLowerCase()));
  if (unknown.length > 0) {
    return {
      ok: false,
      error: invalid(
        `The template parameters '${unknown.join(", ")}' in the parameters file are not valid; they are not present in the original template and can therefore not be provided at deployment time. The only supported parameters for this template are '${declared.join(", ")}'. Please see https://aka.ms/arm-pass-parameter-values for usage details.`,
      ),
    };
  }
  const provided = new Map<string, { value?: unknown; reference?: unknown }>();
  for (const [k, raw] of Object.entries(given)) {
    const name = byLower.get(k.toLowerCase()) ?? k;
    const entry = asRecord(raw);
    if (!entry) {
      return {
        ok: false,
        error: invalid(
          `The parameter '${name}' must be an object with a 'value' or a 'reference'. ${PARAMETER_FILE_HELP}`,
          name,
        ),
      };
    }
    provided.set(name, entry);
  }

  for (const name of declared) {
    const p = template.parameters[name];
    const entry = provided.get(name);
    if (!p) continue;
    if (entry?.reference !== undefined) continue;
    const value = entry?.value;
    if (value === undefined || value === null) {
      if (p.defaultValue === undefined) {
        return {
          ok: false,
          error: invalid(
            `The value for the template parameter '${name}' is not provided. ${PARAMETER_FILE_HELP}`,
            name,
          ),
        };
      }
      continue;
    }
    const problem = constraintProblem(name, p, value);
    if (problem) return { ok: false, error: invalid(problem, name) };
  }

  // Effective values: given ones, then defaults (which may refer to other parameters).
  const values: Record<string, unknown> = {};
  const evaluating = new Set<string>();
  const resolve = (name: string): unknown => {
    if (name in values) return values[name];
    const p = template.parameters[name];
    if (!p) throw new TemplateExpressionError(`The template parameter '${name}' is not found.`);
    const entry = provided.get(name);
    let v: unknown;
    if (entry?.reference !== undefined) v = entry.reference;
    else if (entry?.value !== undefined && entry.value !== null) v = entry.value;
    else {
      if (evaluating.has(name)) {
        throw new TemplateExpressionError(`The default of parameter '${name}' refers to itself.`);
      }
      evaluating.add(name);
      v = evaluateValue(p.defaultValue, {
        ...ctx,
        parameter: (n) => resolve(canonical(n)),
        variable: (n) => {
          throw new TemplateExpressionError(
            `The default value of parameter '${name}' may not use variables ('${n}').`,
          );
        },
      });
      evaluating.delete(name);
    }
    values[name] = v;
    return v;
  };
  const canonical = (n: string) => byLower.get(n.toLowerCase()) ?? n;
  try {
    for (const name of declared) resolve(name);
  } catch (err) {
    if (err instanceof TemplateExpressionError) return { ok: false, error: invalid(err.message) };
    throw err;
  }
  // Variables are evaluated at validation too (this is where the template's own checks fail);
  // those that read a resource's runtime state are left to the deployment.
  const scope = templateScope(template, values, { ...ctx, lookup: () => undefined });
  for (const name of Object.keys(template.variables)) {
    try {
      scope.variable(name);
    } catch (err) {
      if (err instanceof RuntimeReference) continue;
      if (err instanceof TemplateExpressionError) {
        return {
          ok: false,
          error: invalid(
            `The template variable '${name}' is not valid: ${err.message} Please see https://aka.ms/arm-functions for usage details.`,
          ),
        };
      }
      throw err;
    }
  }
  return { ok: true, values };
}

/** The scope of a template's expressions: its parameters' values and its variables (lazily). */
function templateScope(
  template: ArmTemplate,
  parameters: Record<string, unknown>,
  ctx: ExpressionContext,
): Scope {
  const byLower = new Map(Object.keys(parameters).map((n) => [n.toLowerCase(), n]));
  const varNames = new Map(Object.keys(template.variables).map((n) => [n.toLowerCase(), n]));
  const done = new Map<string, unknown>();
  const evaluating = new Set<string>();
  const scope: Scope = {
    ...ctx,
    parameter: (n) => {
      const key = byLower.get(n.toLowerCase());
      if (key === undefined) {
        throw new TemplateExpressionError(`The template parameter '${n}' is not found.`);
      }
      return parameters[key];
    },
    variable: (n) => {
      const key = varNames.get(n.toLowerCase());
      if (key === undefined) {
        throw new TemplateExpressionError(`The template variable '${n}' is not found.`);
      }
      if (done.has(key)) return done.get(key);
      if (evaluating.has(key)) {
        throw new TemplateExpressionError(`The template variable '${key}' refers to itself.`);
      }
      evaluating.add(key);
      try {
        const v = evaluateValue(template.variables[key], scope);
        done.set(key, v);
        return v;
      } finally {
        evaluating.delete(key);
      }
    },
  };
  return scope;
}

function constraintProblem(name: string, p: TemplateParameter, value: unknown): string | undefined {
  const type = p.type.toLowerCase();
  const expected = EXPECTED[type];
  const actual = tokenType(value);
  if (expected === undefined)
    return `The template parameter '${name}' has an unknown type '${p.type}'.`;
  if (expected !== actual) {
    return `Template parameter JToken type is not valid. Expected '${expected}'. Actual '${actual}'. ${PARAMETER_FILE_HELP}`;
  }
  const shown = isSecureType(type)
    ? "(secure)"
    : typeof value === "string"
      ? value
      : JSON.stringify(value);
  const notValid = `The provided value for the template parameter '${name}' is not valid.`;
  if (
    p.allowedValues &&
    !p.allowedValues.some((a) => JSON.stringify(a) === JSON.stringify(value))
  ) {
    return `${notValid} The value '${shown}' is not part of the allowed value(s): '${p.allowedValues.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(",")}'. ${PARAMETER_FILE_HELP}`;
  }
  const length = typeof value === "string" || Array.isArray(value) ? value.length : undefined;
  if (length !== undefined && p.minLength !== undefined && length < p.minLength) {
    return `${notValid} Length of the value should be greater than or equal to '${p.minLength}'. ${PARAMETER_FILE_HELP}`;
  }
  if (length !== undefined && p.maxLength !== undefined && length > p.maxLength) {
    return `${notValid} Length of the value should be less than or equal to '${p.maxLength}'. ${PARAMETER_FILE_HELP}`;
  }
  if (typeof value === "number" && p.minValue !== undefined && value < p.minValue) {
    return `${notValid} The value should be greater than or equal to '${p.minValue}'. ${PARAMETER_FILE_HELP}`;
  }
  if (typeof value === "number" && p.maxValue !== undefined && value > p.maxValue) {
    return `${notValid} The value should be less than or equal to '${p.maxValue}'. ${PARAMETER_FILE_HELP}`;
  }
  return undefined;
}

// ----- outputs ----------------------------------------------------------------------------------

/**
 * The deployment's `outputs` as ARM answers them: every declared output with its type, the value
 * evaluated against the simulated resources. Secure outputs carry no value.
 */
export function evaluateOutputs(
  template: ArmTemplate,
  parameters: Record<string, unknown>,
  ctx: ExpressionContext,
): Record<string, { type: string; value?: unknown }> {
  const out: Record<string, { type: string; value?: unknown }> = {};
  const scope = templateScope(template, parameters, ctx);
  for (const [name, o] of Object.entries(template.outputs)) {
    if (isSecureType(o.type)) {
      out[name] = { type: displayType(o.type) };
      continue;
    }
    out[name] = { type: displayType(o.type), value: evaluateValue(o.value, scope) };
  }
  return out;
}

// ----- expressions ------------------------------------------------------------------------------

export class TemplateExpressionError extends Error {
  override name = "TemplateExpressionError";
}

interface Scope extends ExpressionContext {
  parameter: (name: string) => unknown;
  variable: (name: string) => unknown;
  /** Bound lambda variables (`lambdaVariables('i')`). */
  lambda?: Map<string, unknown>;
}

/** `reference()` of a resource the deployment has not created yet (only at validation). */
class RuntimeReference extends TemplateExpressionError {}

interface Lambda {
  kind: "lambda";
  names: string[];
  body: Node;
  scope: Scope;
}

function isLambda(v: unknown): v is Lambda {
  return asRecord(v)?.kind === "lambda" && "body" in (v as object);
}

function truthy(v: unknown, fn: string): boolean {
  if (typeof v !== "boolean") {
    throw new TemplateExpressionError(`The template function '${fn}' expects boolean arguments.`);
  }
  return v;
}

function lengthOf(v: unknown): number {
  if (typeof v === "string" || Array.isArray(v)) return v.length;
  const rec = asRecord(v);
  if (rec) return Object.keys(rec).length;
  throw new TemplateExpressionError(
    "The template function 'length' expects a string, array or object.",
  );
}

/** Evaluates every `[expression]` string inside a JSON value. */
function evaluateValue(v: unknown, scope: Scope): unknown {
  if (typeof v === "string") return evaluateString(v, scope);
  if (Array.isArray(v)) return v.map((x) => evaluateValue(x, scope));
  const rec = asRecord(v);
  if (rec) {
    return Object.fromEntries(Object.entries(rec).map(([k, x]) => [k, evaluateValue(x, scope)]));
  }
  return v;
}

export function evaluateString(s: string, scope: Scope): unknown {
  if (!s.startsWith("[") || !s.endsWith("]")) return s;
  if (s.startsWith("[[")) return s.slice(1);
  const parser = new ExpressionParser(s.slice(1, -1));
  const node = parser.parseAll();
  return evaluate(node, scope);
}

type Node =
  | { kind: "literal"; value: unknown }
  | { kind: "call"; name: string; args: Node[] }
  | { kind: "member"; target: Node; name: string }
  | { kind: "index"; target: Node; index: Node };

class ExpressionParser {
  private pos = 0;
  constructor(private readonly text: string) {}

  parseAll(): Node {
    const node = this.expression();
    this.skip();
    if (this.pos !== this.text.length) this.fail("unexpected text");
    return node;
  }

  private fail(what: string): never {
    throw new TemplateExpressionError(
      `The template language expression '${this.text}' is not valid: ${what} at position ${this.pos}.`,
    );
  }

  private skip(): void {
    while (/\s/.test(this.text[this.pos] ?? "")) this.pos++;
  }

  private eat(ch: string): boolean {
    this.skip();
    if (this.text[this.pos] === ch) {
      this.pos++;
      return true;
    }
    return false;
  }

  private expression(): Node {
    let node = this.primary();
    for (;;) {
      if (this.eat(".")) {
        node = { kind: "member", target: node, name: this.identifier() };
      } else if (this.eat("[")) {
        const index = this.expression();
        if (!this.eat("]")) this.fail("expected ']'");
        node = { kind: "index", target: node, index };
      } else {
        return node;
      }
    }
  }

  private identifier(): string {
    this.skip();
    const m = /^[A-Za-z_$][\w$]*/.exec(this.text.slice(this.pos));
    if (!m) this.fail("expected a name");
    this.pos += m[0].length;
    return m[0];
  }

  private primary(): Node {
    this.skip();
    const ch = this.text[this.pos] ?? "";
    if (ch === "'") {
      let out = "";
      this.pos++;
      for (;;) {
        const c = this.text[this.pos];
        if (c === undefined) this.fail("unterminated string");
        if (c === "'") {
          if (this.text[this.pos + 1] === "'") {
            out += "'";
            this.pos += 2;
            continue;
          }
          this.pos++;
          return { kind: "literal", value: out };
        }
        out += c;
        this.pos++;
      }
    }
    const num = /^-?\d+/.exec(this.text.slice(this.pos));
    if (num) {
      this.pos += num[0].length;
      return { kind: "literal", value: Number(num[0]) };
    }
    const name = this.identifier();
    if (!this.eat("(")) this.fail(`expected '(' after '${name}'`);
    const args: Node[] = [];
    if (!this.eat(")")) {
      do args.push(this.expression());
      while (this.eat(","));
      if (!this.eat(")")) this.fail("expected ')'");
    }
    return { kind: "call", name, args };
  }
}

function evaluate(node: Node, scope: Scope): unknown {
  switch (node.kind) {
    case "literal":
      return node.value;
    case "member": {
      const target = asRecord(evaluate(node.target, scope));
      const key = Object.keys(target ?? {}).find(
        (k) => k.toLowerCase() === node.name.toLowerCase(),
      );
      if (!target || key === undefined) {
        throw new TemplateExpressionError(
          `The language expression property '${node.name}' doesn't exist.`,
        );
      }
      return target[key];
    }
    case "index": {
      const target = evaluate(node.target, scope);
      const index = evaluate(node.index, scope);
      if (Array.isArray(target) && typeof index === "number") {
        if (index < 0 || index >= target.length) {
          throw new TemplateExpressionError(
            `The language expression property array index '${index}' is out of bounds.`,
          );
        }
        return target[index] as unknown;
      }
      const rec = asRecord(target);
      if (rec && typeof index === "string" && index in rec) return rec[index];
      throw new TemplateExpressionError(
        `The language expression index '${String(index)}' is not valid.`,
      );
    }
    case "call":
      return callLazy(node.name.toLowerCase(), node.args, scope);
  }
}

/** Functions whose arguments are not all evaluated first: if() and lambda(). */
function callLazy(name: string, args: Node[], scope: Scope): unknown {
  if (name === "if") {
    const [cond, a, b] = args;
    if (!cond || !a || !b)
      throw new TemplateExpressionError("The template function 'if' needs 3 arguments.");
    return truthy(evaluate(cond, scope), name) ? evaluate(a, scope) : evaluate(b, scope);
  }
  if (name === "lambda") {
    const body = args.at(-1);
    if (!body) throw new TemplateExpressionError("The template function 'lambda' needs a body.");
    const names = args.slice(0, -1).map((a) => str(evaluate(a, scope), name));
    return { kind: "lambda", names, body, scope } satisfies Lambda;
  }
  return call(
    name,
    args.map((a) => evaluate(a, scope)),
    scope,
  );
}

function str(v: unknown, fn: string): string {
  if (typeof v !== "string") {
    throw new TemplateExpressionError(`The template function '${fn}' expects string arguments.`);
  }
  return v;
}

/** .NET composite format as ARM's format() uses it: `{0}`, `{1:format}` (format ignored), `{{`. */
function dotnetFormat(fmt: string, args: unknown[]): string {
  return fmt.replace(/\{\{|\}\}|\{(\d+)(?::[^}]*)?\}/g, (m, i: string | undefined) => {
    if (m === "{{") return "{";
    if (m === "}}") return "}";
    const v = args[Number(i)];
    if (v === undefined) {
      throw new TemplateExpressionError(`The format string '${fmt}' refers to a missing argument.`);
    }
    return typeof v === "string" ? v : JSON.stringify(v);
  });
}

function call(name: string, args: unknown[], scope: Scope): unknown {
  const rgId = `/subscriptions/${scope.subscriptionId}/resourceGroups/${scope.resourceGroup}`;
  switch (name) {
    case "parameters":
      return scope.parameter(str(args[0], name));
    case "variables":
      return scope.variable(str(args[0], name));
    case "lambdavariables": {
      const key = str(args[0], name);
      if (!scope.lambda?.has(key)) {
        throw new TemplateExpressionError(`The lambda variable '${key}' is not in scope.`);
      }
      return scope.lambda.get(key);
    }
    case "filter": {
      const [items, fn] = args;
      if (!Array.isArray(items) || !isLambda(fn)) {
        throw new TemplateExpressionError(
          "The template function 'filter' expects an array and a lambda.",
        );
      }
      return items.filter((item) =>
        truthy(
          evaluate(fn.body, {
            ...fn.scope,
            lambda: new Map([...(fn.scope.lambda ?? []), [fn.names[0] ?? "", item]]),
          }),
          name,
        ),
      );
    }
    case "range": {
      const [start, count] = args;
      if (typeof start !== "number" || typeof count !== "number" || count < 0) {
        throw new TemplateExpressionError(
          "The template function 'range' expects a start and a count.",
        );
      }
      return Array.from({ length: count }, (_, i) => start + i);
    }
    case "length":
      return lengthOf(args[0]);
    case "empty":
      return args[0] === null || args[0] === undefined || lengthOf(args[0]) === 0;
    case "equals":
      return JSON.stringify(args[0]) === JSON.stringify(args[1]);
    case "and":
      return args.every((a) => truthy(a, name));
    case "or":
      return args.some((a) => truthy(a, name));
    case "not":
      return !truthy(args[0], name);
    case "contains": {
      const [container, item] = args;
      if (typeof container === "string") return container.includes(str(item, name));
      if (Array.isArray(container)) {
        return container.some((x) => JSON.stringify(x) === JSON.stringify(item));
      }
      const rec = asRecord(container);
      if (rec)
        return Object.keys(rec).some((k) => k.toLowerCase() === str(item, name).toLowerCase());
      throw new TemplateExpressionError(
        "The template function 'contains' expects a string, array or object.",
      );
    }
    case "substring": {
      const s = str(args[0], name);
      const start = typeof args[1] === "number" ? args[1] : 0;
      const len = typeof args[2] === "number" ? args[2] : s.length - start;
      if (start < 0 || len < 0 || start + len > s.length) {
        throw new TemplateExpressionError(
          "The template function 'substring' was given an index or length outside the string.",
        );
      }
      return s.slice(start, start + len);
    }
    case "int": {
      const v = args[0];
      if (typeof v === "number" && Number.isInteger(v)) return v;
      if (typeof v === "string" && /^[+-]?\d+$/.test(v.trim())) return Number(v);
      throw new TemplateExpressionError(
        "The template language function 'int' was invoked with a parameter that is not valid. The value cannot be converted to the target type.",
      );
    }
    case "union": {
      if (args.every(Array.isArray)) {
        const out: unknown[] = [];
        for (const x of (args as unknown[][]).flat()) {
          if (!out.some((y) => JSON.stringify(y) === JSON.stringify(x))) out.push(x);
        }
        return out;
      }
      const out: Record<string, unknown> = {};
      for (const a of args) {
        const rec = asRecord(a);
        if (!rec)
          throw new TemplateExpressionError(
            "The template function 'union' expects objects or arrays.",
          );
        Object.assign(out, rec);
      }
      return out;
    }
    case "createobject": {
      if (args.length % 2 !== 0) {
        throw new TemplateExpressionError(
          "The template function 'createObject' needs key/value pairs.",
        );
      }
      const out: Record<string, unknown> = {};
      for (let i = 0; i < args.length; i += 2) out[str(args[i], name)] = args[i + 1];
      return out;
    }
    case "format":
      return dotnetFormat(str(args[0], name), args.slice(1));
    case "concat":
      if (args.every(Array.isArray)) return (args as unknown[][]).flat();
      return args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join("");
    case "tolower":
      return str(args[0], name).toLowerCase();
    case "toupper":
      return str(args[0], name).toUpperCase();
    case "string":
      return typeof args[0] === "string" ? args[0] : JSON.stringify(args[0]);
    case "resourcegroup":
      return {
        id: rgId,
        name: scope.resourceGroup,
        type: "Microsoft.Resources/resourceGroups",
        location: scope.location,
        properties: { provisioningState: "Succeeded" },
      };
    case "subscription":
      return {
        id: `/subscriptions/${scope.subscriptionId}`,
        subscriptionId: scope.subscriptionId,
      };
    case "resourceid": {
      const parts = args.map((a) => str(a, name));
      const typeAt = parts.findIndex((p) => p.includes("/"));
      if (typeAt < 0 || typeAt > 2) {
        throw new TemplateExpressionError(
          "The template function 'resourceId' needs a resource type.",
        );
      }
      const [sub, rg] =
        typeAt === 2
          ? [parts[0], parts[1]]
          : typeAt === 1
            ? [scope.subscriptionId, parts[0]]
            : [scope.subscriptionId, scope.resourceGroup];
      const [namespace = "", ...types] = (parts[typeAt] ?? "").split("/");
      const names = parts.slice(typeAt + 1);
      if (names.length !== types.length) {
        throw new TemplateExpressionError(
          `The template function 'resourceId' got ${names.length} names for type '${parts[typeAt] ?? ""}'.`,
        );
      }
      const path = types.map((t, i) => `${t}/${names[i] ?? ""}`).join("/");
      return `/subscriptions/${sub ?? ""}/resourceGroups/${rg ?? ""}/providers/${namespace}/${path}`;
    }
    case "reference": {
      const id = str(args[0], name);
      const full = typeof args[2] === "string" && args[2].toLowerCase() === "full";
      const resource = scope.lookup?.(id);
      if (!resource) {
        throw new RuntimeReference(`The Resource '${id}' was not found.`);
      }
      return full ? resource : (asRecord(resource.properties) ?? {});
    }
    default:
      throw new TemplateExpressionError(
        `The template function '${name}' is not known to the ARM simulator (local/simulators/arm-template.ts).`,
      );
  }
}
