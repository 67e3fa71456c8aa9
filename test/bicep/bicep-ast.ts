/**
 * Reads the project's Bicep source with tree-sitter-bicep (WebAssembly) for the contract tests of
 * main.bicep and its modules: they walk the tree for declarations, decorators and property values
 * (app settings, tables, roles, NSG rules, descriptions), which the tests read without the .NET
 * Bicep CLI. Syntax, types, API versions and parameter files are checked by the real compiler
 * (`npm run bicep:check`); the Grafana host's contract is read from its compiled template.
 */
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

import { Language, Parser, type Node } from "web-tree-sitter";

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const BICEP_DIR = join(REPO_ROOT, "bicep");

let parserPromise: Promise<Parser> | undefined;

/** One parser per test file (the grammar loads in a few milliseconds). */
export function bicepParser(): Promise<Parser> {
  parserPromise ??= (async () => {
    await Parser.init();
    const require = createRequire(import.meta.url);
    const wasm = join(
      dirname(require.resolve("tree-sitter-bicep/package.json")),
      "tree-sitter-bicep.wasm",
    );
    const language = await Language.load(wasm);
    const parser = new Parser();
    parser.setLanguage(language);
    return parser;
  })();
  return parserPromise;
}

export function parse(parser: Parser, text: string): Node {
  const tree = parser.parse(text);
  if (!tree) throw new Error("tree-sitter returned no tree");
  return tree.rootNode;
}

/** Files under `dir` (recursively) whose names end with `suffix`, as absolute paths, sorted. */
export function filesUnder(dir: string, suffix: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(path, suffix));
    else if (entry.name.endsWith(suffix)) out.push(path);
  }
  return out.sort();
}

export const rel = (path: string) => relative(REPO_ROOT, path);

// ----- declarations ---------------------------------------------------------------------------

export interface Decorator {
  name: string;
  /** Argument nodes. */
  args: Node[];
}

export interface Declaration {
  kind: "param" | "var" | "output" | "resource" | "module" | "type" | "func";
  name: string;
  node: Node;
  decorators: Decorator[];
}

export interface Param extends Declaration {
  kind: "param";
  /** The type's source text, e.g. `string`, `string[]`, `loopsTransactionalIdsType`. */
  type: string;
  defaultValue?: Node;
}

export interface Output extends Declaration {
  kind: "output";
  type: string;
  value: Node;
}

export interface Resource extends Declaration {
  kind: "resource" | "module";
  /** The resource type with API version (`Microsoft.X/y@2024-01-01`) or the module path. */
  target: string;
  /** The body object (inside `if`/`for` when present). */
  body: Node | undefined;
  loop: boolean;
  condition: Node | undefined;
  /** Resources declared inside this one (`resource child 'x' = {...}` in the body). */
  children: Resource[];
}

const KIND_BY_NODE: Record<string, Declaration["kind"]> = {
  parameter_declaration: "param",
  variable_declaration: "var",
  output_declaration: "output",
  resource_declaration: "resource",
  module_declaration: "module",
  type_declaration: "type",
  user_defined_function: "func",
};

export function stringValue(node: Node | null | undefined): string | undefined {
  if (node?.type !== "string") return undefined;
  if (node.namedChildren.some((c) => c.type === "interpolation")) return undefined;
  return node.namedChildren
    .filter((c) => c.type === "string_content" || c.type === "escape_sequence")
    .map((c) => (c.type === "escape_sequence" ? c.text.slice(1) : c.text))
    .join("");
}

function decoratorsOf(node: Node): Decorator[] {
  return node.namedChildren
    .filter((d) => d.type === "decorator")
    .map((d) => {
      const call = d.namedChildren.find((c) => c.type === "call_expression");
      const fn = call?.childForFieldName("function");
      const args = call?.childForFieldName("arguments")?.namedChildren ?? [];
      return { name: fn?.text ?? d.text.slice(1), args };
    });
}

function bodyOf(node: Node): {
  body: Node | undefined;
  loop: boolean;
  condition: Node | undefined;
} {
  let loop = false;
  let condition: Node | undefined;
  let current: Node | undefined = node.namedChildren.at(-1);
  for (let depth = 0; current && depth < 4; depth++) {
    if (current.type === "object") return { body: current, loop, condition };
    if (current.type === "for_statement") {
      loop = true;
      current = current.childForFieldName("body") ?? current.namedChildren.at(-1);
    } else if (current.type === "if_statement") {
      condition = current.namedChildren.find((c) => c.type === "parenthesized_expression");
      current = current.namedChildren.at(-1);
    } else {
      return { body: undefined, loop, condition };
    }
  }
  return { body: undefined, loop, condition };
}

function toResource(node: Node, decorators: Decorator[]): Resource {
  const name = node.namedChildren.find((c) => c.type === "identifier")?.text ?? "";
  const target = stringValue(node.namedChildren.find((c) => c.type === "string")) ?? "";
  const { body, loop, condition } = bodyOf(node);
  const children = (body?.namedChildren ?? [])
    .filter((c) => c.type === "resource_declaration")
    .map((c) => toResource(c, []));
  return {
    kind: node.type === "module_declaration" ? "module" : "resource",
    name,
    node,
    decorators,
    target,
    body,
    loop,
    condition,
    children,
  };
}

export class BicepFile {
  readonly declarations: Declaration[] = [];

  constructor(
    readonly path: string,
    readonly text: string,
    readonly root: Node,
  ) {
    let pending: Decorator[] = [];
    for (const node of root.namedChildren) {
      if (node.type === "decorators") {
        pending = decoratorsOf(node);
        continue;
      }
      const kind = KIND_BY_NODE[node.type];
      if (!kind) {
        pending = [];
        continue;
      }
      if (kind === "resource" || kind === "module") {
        this.declarations.push(toResource(node, pending));
      } else {
        const ids = node.namedChildren.filter((c) => c.type === "identifier");
        const name = ids[0]?.text ?? "";
        const type = node.namedChildren.find((c) => c.type === "type");
        if (kind === "param") {
          const valueNode = node.namedChildren.at(-1);
          const param: Param = {
            kind,
            name,
            node,
            decorators: pending,
            type: type?.text ?? "",
            ...(valueNode && valueNode !== type && valueNode !== ids[0]
              ? { defaultValue: valueNode }
              : {}),
          };
          this.declarations.push(param);
        } else if (kind === "output") {
          const output: Output = {
            kind,
            name,
            node,
            decorators: pending,
            type: type?.text ?? "",
            value: node.namedChildren.at(-1) ?? node,
          };
          this.declarations.push(output);
        } else {
          this.declarations.push({ kind, name, node, decorators: pending });
        }
      }
      pending = [];
    }
  }

  get params(): Param[] {
    return this.declarations.filter((d): d is Param => d.kind === "param");
  }
  get outputs(): Output[] {
    return this.declarations.filter((d): d is Output => d.kind === "output");
  }
  get resources(): Resource[] {
    return this.declarations.filter((d): d is Resource => d.kind === "resource");
  }
  get modules(): Resource[] {
    return this.declarations.filter((d): d is Resource => d.kind === "module");
  }

  /** Resources including the ones nested in other resources' bodies. */
  get allResources(): Resource[] {
    const out: Resource[] = [];
    const add = (r: Resource) => {
      out.push(r);
      r.children.forEach(add);
    };
    this.resources.forEach(add);
    return out;
  }

  param(name: string): Param {
    const p = this.params.find((d) => d.name === name);
    if (!p) throw new Error(`${rel(this.path)}: no param ${name}`);
    return p;
  }

  /** The value expression of `var name = ...`. */
  variable(name: string): Node {
    const v = this.declarations.find((d) => d.kind === "var" && d.name === name);
    const value = v?.node.namedChildren.at(-1);
    if (!value) throw new Error(`${rel(this.path)}: no var ${name}`);
    return value;
  }

  resource(name: string): Resource {
    const r = [...this.allResources, ...this.modules].find((d) => d.name === name);
    if (!r) throw new Error(`${rel(this.path)}: no resource or module ${name}`);
    return r;
  }

  resourcesOfType(type: string): Resource[] {
    const lower = type.toLowerCase();
    return this.allResources.filter((r) => r.target.toLowerCase().split("@")[0] === lower);
  }
}

export function hasDecorator(d: Declaration, name: string): boolean {
  return d.decorators.some((x) => x.name === name);
}

export function decoratorArg(d: Declaration, name: string): Node | undefined {
  return d.decorators.find((x) => x.name === name)?.args[0];
}

export function loadBicep(parser: Parser, path: string): BicepFile {
  const text = readFileSync(path, "utf8");
  return new BicepFile(path, text, parse(parser, text));
}

// ----- expressions ------------------------------------------------------------------------------

/** Property key of an `object_property` (identifier or quoted string). */
export function propertyKey(prop: Node): string {
  const key = prop.namedChildren[0];
  if (!key) return "";
  return key.type === "string" ? (stringValue(key) ?? key.text) : key.text;
}

/** Key -> value node of an object literal (direct properties only). */
export function objectEntries(obj: Node | undefined): Map<string, Node> {
  const out = new Map<string, Node>();
  if (obj?.type !== "object") return out;
  for (const prop of obj.namedChildren) {
    if (prop.type !== "object_property") continue;
    const value = prop.namedChildren.at(-1);
    if (value) out.set(propertyKey(prop), value);
  }
  return out;
}

/** Follows a path of object keys (`properties.osProfile.customData`). */
export function at(obj: Node | undefined, path: string): Node | undefined {
  let current = obj;
  for (const key of path.split(".")) {
    current = objectEntries(current).get(key);
    if (!current) return undefined;
  }
  return current;
}

/** The string items of an array literal. */
export function stringItems(array: Node | undefined): string[] {
  if (array?.type !== "array") return [];
  return array.namedChildren.map((n) => stringValue(n) ?? `<${n.text}>`);
}

/** Identifiers referenced in an expression (not property names of member accesses or objects). */
export function referencedIdentifiers(node: Node): Set<string> {
  const out = new Set<string>();
  const visit = (n: Node): void => {
    if (n.type === "identifier") {
      const parent = n.parent;
      const isObjectKey =
        parent?.type === "object_property" && parent.namedChildren[0]?.id === n.id;
      const isCallee =
        parent?.type === "call_expression" && parent.childForFieldName("function")?.id === n.id;
      if (!isObjectKey && !isCallee) out.add(n.text);
    }
    for (const child of n.namedChildren) visit(child);
  };
  visit(node);
  return out;
}

/** Every call of `fn(...)` under `node`. */
export function calls(node: Node, fn: string): Node[] {
  return node
    .descendantsOfType("call_expression")
    .filter((c) => c.childForFieldName("function")?.text === fn);
}
