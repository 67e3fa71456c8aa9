/**
 * Pure helpers of `scripts/bicep-check.ts`: reading the Bicep CLI's diagnostics and the warning
 * allowlist (`bicep/lint-allowlist.txt`), and deciding what fails the check.
 */
import { isAbsolute, relative, sep } from "node:path";

export type Level = "Error" | "Warning" | "Info";

export interface Diagnostic {
  /** Repository-relative, forward slashes. */
  file: string;
  line: number;
  column: number;
  level: Level;
  /** `BCP187`, `no-unused-params`, ... */
  code: string;
  message: string;
}

export interface AllowEntry {
  code: string;
  file: string;
  /** Text the message must contain. */
  contains: string;
  why: string;
  /** Line in the allowlist file (for messages). */
  line: number;
}

/** `/abs/path/file.bicep(12,3) : Warning BCP187: The property ... [https://...]` */
const DIAGNOSTIC_LINE = /^(.+?)\((\d+),(\d+)\) : (Error|Warning|Info) ([A-Za-z0-9-]+): (.*)$/;

/** Diagnostics in the CLI's default format, paths made relative to `root`; other lines ignored. */
export function parseDiagnostics(output: string, root: string): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const raw of output.split(/\r?\n/)) {
    const m = DIAGNOSTIC_LINE.exec(raw.trim());
    if (!m) continue;
    const [, path = "", line = "0", column = "0", level, code = "", message = ""] = m;
    const file = isAbsolute(path) ? relative(root, path) : path;
    out.push({
      file: file.split(sep).join("/"),
      line: Number(line),
      column: Number(column),
      level: level as Level,
      code,
      message: message.replace(/\s*\[https?:\/\/[^\]]+\]$/, ""),
    });
  }
  return out;
}

/** The same diagnostic reported by several commands (build and lint) counts once. */
export function dedupe(diagnostics: Diagnostic[]): Diagnostic[] {
  const seen = new Map<string, Diagnostic>();
  for (const d of diagnostics) {
    seen.set(`${d.file}:${d.line}:${d.column}:${d.code}:${d.message}`, d);
  }
  return [...seen.values()].sort(
    (a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.column - b.column,
  );
}

/** Parses `rule | file | text the message contains | why` lines; `#` starts a comment line. */
export function parseAllowlist(text: string): AllowEntry[] {
  const entries: AllowEntry[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const parts = line.split("|").map((p) => p.trim());
    const [code = "", file = "", contains = "", ...why] = parts;
    const reason = why.join("|").trim();
    if (parts.length < 4 || code === "" || file === "" || reason === "") {
      throw new Error(
        `bicep/lint-allowlist.txt:${i + 1}: expected "rule | file | message contains | why", got ${JSON.stringify(raw)}`,
      );
    }
    entries.push({ code, file, contains, why: reason, line: i + 1 });
  });
  return entries;
}

export function format(d: Diagnostic): string {
  return `${d.file}(${d.line},${d.column}) : ${d.level} ${d.code}: ${d.message}`;
}

export interface Verdict {
  errors: Diagnostic[];
  /** Warnings no allowlist entry covers. */
  unexpected: Diagnostic[];
  /** Warnings an entry covers. */
  allowed: Diagnostic[];
  /** Entries that matched nothing (stale: they would hide a future warning). */
  unused: AllowEntry[];
}

export function judge(diagnostics: Diagnostic[], allowlist: AllowEntry[]): Verdict {
  const used = new Set<AllowEntry>();
  const verdict: Verdict = { errors: [], unexpected: [], allowed: [], unused: [] };
  for (const d of diagnostics) {
    if (d.level === "Error") {
      verdict.errors.push(d);
      continue;
    }
    if (d.level !== "Warning") continue;
    const entry = allowlist.find(
      (e) => e.code === d.code && e.file === d.file && d.message.includes(e.contains),
    );
    if (entry) {
      used.add(entry);
      verdict.allowed.push(d);
    } else {
      verdict.unexpected.push(d);
    }
  }
  verdict.unused = allowlist.filter((e) => !used.has(e));
  return verdict;
}

export function passed(v: Verdict): boolean {
  return v.errors.length === 0 && v.unexpected.length === 0 && v.unused.length === 0;
}
