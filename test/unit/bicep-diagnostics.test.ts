import { readFileSync } from "node:fs";

import { describe, expect, it } from "vitest";

import {
  dedupe,
  judge,
  parseAllowlist,
  parseDiagnostics,
  passed,
} from "../../scripts/bicep-diagnostics.js";

const ROOT = "/repo";

// Lines as the Bicep CLI 0.49 prints them (default diagnostics format).
const OUTPUT = [
  '/repo/bicep/modules/functionApp.bicep(104,3) : Warning BCP187: The property "location" does not exist in the resource or type definition, although it might still be valid. If this is a resource type definition inaccuracy, report it using https://aka.ms/bicep-type-issues. [https://aka.ms/bicep/core-diagnostics#BCP187]',
  '/repo/bicep/main.bicep(80,7) : Warning no-unused-params: Parameter "unusedThing" is declared but never used. [https://aka.ms/bicep/linter-diagnostics#no-unused-params]',
  '/repo/bicep/grafana-host.bicep(206,27) : Error BCP083: The type "Microsoft.Compute/virtualMachines" does not contain property "nam". Did you mean "name"? [https://aka.ms/bicep/core-diagnostics#BCP083]',
  "Some unrelated line",
].join("\n");

describe("bicep-check diagnostics", () => {
  it("when the CLI's output is parsed, then each diagnostic has a repo-relative file, level, rule and message", () => {
    const d = parseDiagnostics(OUTPUT, ROOT);
    expect(d.map((x) => [x.file, x.line, x.column, x.level, x.code])).toEqual([
      ["bicep/modules/functionApp.bicep", 104, 3, "Warning", "BCP187"],
      ["bicep/main.bicep", 80, 7, "Warning", "no-unused-params"],
      ["bicep/grafana-host.bicep", 206, 27, "Error", "BCP083"],
    ]);
    expect(d[1]?.message).toBe('Parameter "unusedThing" is declared but never used.');
  });

  it("when build and lint report the same warning, then it counts once", () => {
    const d = parseDiagnostics(OUTPUT, ROOT);
    expect(dedupe([...d, ...d])).toHaveLength(3);
  });

  it("when diagnostics are judged, then errors, unlisted warnings and stale entries fail and listed warnings pass", () => {
    const d = parseDiagnostics(OUTPUT, ROOT);
    const allow = parseAllowlist(
      [
        "# comment",
        "",
        'BCP187 | bicep/modules/functionApp.bicep | "location" | ARM needs it',
        "BCP081 | bicep/main.bicep | anything | stale entry",
      ].join("\n"),
    );
    const v = judge(d, allow);
    expect(v.errors.map((x) => x.code)).toEqual(["BCP083"]);
    expect(v.unexpected.map((x) => x.code)).toEqual(["no-unused-params"]);
    expect(v.allowed.map((x) => x.code)).toEqual(["BCP187"]);
    expect(v.unused.map((e) => e.line)).toEqual([4]);
    expect(passed(v)).toBe(false);

    // The same rule in another file, or with another message, is not covered.
    const other = judge(
      parseDiagnostics(OUTPUT.replace("functionApp.bicep", "storage.bicep"), ROOT),
      allow.slice(0, 1),
    );
    expect(other.unexpected.map((x) => x.code)).toContain("BCP187");

    expect(passed(judge(d.slice(0, 1), allow.slice(0, 1)))).toBe(true);
  });

  it("when an allowlist line lacks its reason, then reading the allowlist fails", () => {
    expect(() => parseAllowlist("BCP187 | bicep/a.bicep | x")).toThrow(/rule \| file/);
    expect(() => parseAllowlist("BCP187 | bicep/a.bicep | x |   ")).toThrow(/rule \| file/);
  });

  it("when the project's allowlist is read, then every entry names a rule, a file under bicep/ and why", () => {
    const entries = parseAllowlist(
      readFileSync(new URL("../../bicep/lint-allowlist.txt", import.meta.url), "utf8"),
    );
    expect(entries.length).toBeGreaterThan(0);
    expect(entries.length).toBeLessThanOrEqual(5);
    for (const e of entries) {
      expect(e.file).toMatch(/^bicep\/.+\.bicep$/);
      expect(e.why.length).toBeGreaterThan(20);
    }
  });
});
