/**
 * Syntax of every Bicep file, checked with tree-sitter-bicep because the Bicep compiler cannot run
 * here. `.bicepparam` files: the grammar knows `using` but not `param x = value`, so each assignment
 * is re-read as `var x = value` (the same expression grammar) and checked against main.bicep.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

import { beforeAll, describe, expect, it } from "vitest";
import type { Parser } from "web-tree-sitter";

import {
  BICEP_DIR,
  bicepParser,
  calls,
  filesUnder,
  loadBicep,
  parse,
  rel,
  stringValue,
  syntaxProblems,
} from "./bicep-ast.js";

let parser: Parser;

beforeAll(async () => {
  parser = await bicepParser();
});

const bicepFiles = filesUnder(BICEP_DIR, ".bicep");
const paramFiles = filesUnder(BICEP_DIR, ".bicepparam");

interface ParamFileCheck {
  using: string | undefined;
  assignments: Map<string, { line: number; text: string }>;
  problems: string[];
}

/** Splits a .bicepparam file into its `using` target and `param name = <expression>` assignments. */
function readParamFile(text: string): ParamFileCheck {
  const problems: string[] = [];
  const assignments = new Map<string, { line: number; text: string }>();
  let using: string | undefined;
  const lines = text.split("\n");
  let current: { name: string; line: number; lines: string[] } | undefined;
  const flush = () => {
    if (current)
      assignments.set(current.name, { line: current.line, text: current.lines.join("\n") });
    current = undefined;
  };
  lines.forEach((raw, i) => {
    const line = raw.replace(/\s+$/, "");
    const usingMatch = /^using\s+'([^']+)'$/.exec(line);
    const paramMatch = /^param\s+([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (usingMatch) {
      flush();
      if (using !== undefined) problems.push(`${i + 1}:1 second using statement`);
      using = usingMatch[1];
    } else if (paramMatch) {
      flush();
      const name = paramMatch[1] ?? "";
      if (assignments.has(name)) problems.push(`${i + 1}:1 param ${name} assigned twice`);
      current = { name, line: i + 1, lines: [`var ${name} = ${paramMatch[2] ?? ""}`] };
    } else if (current && (line.startsWith(" ") || /^[\]})]/.test(line))) {
      current.lines.push(line);
    } else if (line === "" || line.trimStart().startsWith("//")) {
      // blank or comment
    } else {
      flush();
      problems.push(
        `${i + 1}:1 not a using or param statement: ${JSON.stringify(line.slice(0, 40))}`,
      );
    }
  });
  flush();
  if (using === undefined) problems.push("1:1 no using statement");
  return { using, assignments, problems };
}

function checkParamFile(path: string, text: string): string[] {
  const { using, assignments, problems } = readParamFile(text);
  for (const [name, { line, text: expr }] of assignments) {
    for (const p of syntaxProblems(parse(parser, expr))) {
      const [l = "1", c = "1", ...rest] = p.split(/[: ]/);
      // On the first line "var" stands where the file has "param" (two characters longer).
      const col = Number(l) === 1 ? Number(c) + 2 : Number(c);
      problems.push(`${line + Number(l) - 1}:${col} ${rest.join(" ")} (param ${name})`);
    }
  }
  if (using === undefined) return problems;
  const target = resolve(dirname(path), using);
  if (!existsSync(target)) return [...problems, `using target ${using} does not exist`];
  const main = loadBicep(parser, target);
  for (const name of assignments.keys()) {
    if (!main.params.some((p) => p.name === name))
      problems.push(`param ${name} is not declared by ${rel(target)}`);
  }
  for (const p of main.params) {
    if (p.defaultValue === undefined && !assignments.has(p.name)) {
      problems.push(`required param ${p.name} of ${rel(target)} is not set`);
    }
  }
  return problems;
}

describe("Bicep syntax (tree-sitter-bicep)", () => {
  it("when the bicep folder is listed, then it holds the platform, the template spec and their modules", () => {
    const names = bicepFiles.map(rel);
    expect(names).toContain("bicep/main.bicep");
    expect(names).toContain("bicep/grafana-host.bicep");
    expect(names.filter((n) => n.startsWith("bicep/modules/")).length).toBeGreaterThanOrEqual(10);
    expect(paramFiles.map(rel)).toEqual(
      expect.arrayContaining([
        "bicep/environments/dev.bicepparam",
        "bicep/environments/prod.bicepparam",
      ]),
    );
  });

  it.each(bicepFiles.map((f) => [rel(f), f]))(
    "when %s is parsed, then it has no syntax error",
    (_name, path) => {
      const problems = syntaxProblems(parse(parser, readFileSync(path, "utf8")));
      expect(problems, `${rel(path)}:\n${problems.join("\n")}`).toEqual([]);
    },
  );

  it("when a file has a syntax error, then the check reports where (so the check can fail)", () => {
    const broken = [
      "param name string",
      "resource sa 'Microsoft.Storage/storageAccounts@2023-05-01' = {",
      "  name: name",
      "  properties: {",
      "    minimumTlsVersion: 'TLS1_2'",
      "}",
      "output id string = sa.id",
    ].join("\n");
    const problems = syntaxProblems(parse(parser, broken));
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.every((p) => /^\d+:\d+ /.test(p))).toBe(true);

    const unclosedCall = "var x = concat('a', 'b'\nvar y = 1\n";
    expect(syntaxProblems(parse(parser, unclosedCall)).length).toBeGreaterThan(0);

    const fine = "param name string\noutput upper string = toUpper(name)\n";
    expect(syntaxProblems(parse(parser, fine))).toEqual([]);
  });

  it.each(paramFiles.map((f) => [rel(f), f]))(
    "when %s is checked, then it uses main.bicep, parses, and sets only declared and every required param",
    (_name, path) => {
      const problems = checkParamFile(path, readFileSync(path, "utf8"));
      expect(problems, `${rel(path)}:\n${problems.join("\n")}`).toEqual([]);
    },
  );

  it("when a parameters file is broken, then the parameters-file check reports it", () => {
    const path = join(BICEP_DIR, "environments", "broken.bicepparam");
    const problems = checkParamFile(
      path,
      [
        "using '../main.bicep'",
        "param environmentName = 'dev'",
        "param notAParam = 1",
        "param grafanaDomain = concat('a'",
        "whatever",
      ].join("\n"),
    );
    expect(problems.some((p) => p.includes("notAParam is not declared"))).toBe(true);
    expect(problems.some((p) => p.includes("required param supabaseClientId"))).toBe(true);
    expect(problems.some((p) => p.startsWith("5:1 not a using or param statement"))).toBe(true);
    expect(problems.some((p) => p.includes("(param grafanaDomain)"))).toBe(true);
  });

  it("when modules and load*Content() paths are followed, then every referenced file exists", () => {
    const missing: string[] = [];
    for (const path of bicepFiles) {
      const file = loadBicep(parser, path);
      for (const m of file.modules) {
        if (!existsSync(resolve(dirname(path), m.target)))
          missing.push(`${rel(path)}: module ${m.target}`);
      }
      for (const fn of ["loadJsonContent", "loadTextContent", "loadFileAsBase64"]) {
        for (const call of calls(file.root, fn)) {
          const arg = stringValue(call.childForFieldName("arguments")?.namedChildren[0]);
          if (arg === undefined || !existsSync(resolve(dirname(path), arg))) {
            missing.push(`${rel(path)}: ${fn}(${arg ?? "<expression>"})`);
          }
        }
      }
    }
    expect(missing).toEqual([]);
  });
});
