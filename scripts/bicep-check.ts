/**
 * `npm run bicep:check`: compiles and lints the project's Bicep with the real Bicep CLI.
 *
 *  1. Restores the CLI pinned in tools/bicep/bicep-cli.csproj with `dotnet restore` (the NuGet
 *     package Azure.Bicep.CommandLine.linux-x64 ships the self-contained `bicep` executable) into
 *     tools/bicep/packages/ (git-ignored). Skipped when that version is already there.
 *  2. `bicep build` of every .bicep under bicep/, `bicep build-params` of every environment's
 *     .bicepparam (with the placeholder values below), `bicep lint` of every .bicep.
 *  3. Fails on any error, on any warning bicep/lint-allowlist.txt does not list, and on an
 *     allowlist entry that matches nothing.
 *  4. Fails when bicep/compiled/grafana-host.json (the contract the ARM simulator enforces and the
 *     contract tests read) differs from a fresh compile. `npm run bicep:check -- --update`
 *     rewrites it.
 */
import { execFile } from "node:child_process";
import { chmod, copyFile, mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

import {
  dedupe,
  format,
  judge,
  parseAllowlist,
  parseDiagnostics,
  passed,
  type Diagnostic,
} from "./bicep-diagnostics.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CSPROJ = join(ROOT, "tools/bicep/bicep-cli.csproj");
const PACKAGES = join(ROOT, "tools/bicep/packages");
const BICEP_DIR = join(ROOT, "bicep");
const ALLOWLIST = join(BICEP_DIR, "lint-allowlist.txt");
/** Compiled templates that are committed, by source: the Grafana host template spec. */
const COMMITTED = [{ source: "grafana-host.bicep", compiled: "compiled/grafana-host.json" }];

/**
 * The environment variables the .bicepparam files read, with placeholder values: build-params
 * checks names, types and constraints against main.bicep, not real values. Every other
 * SUPAFANA_* variable is removed, so the optional ones take their defaults and the result does
 * not depend on the caller's shell.
 */
export const PLACEHOLDER_ENV: Record<string, string> = {
  SUPAFANA_GRAFANA_DOMAIN: "grafana.example.com",
  SUPAFANA_SUPABASE_CLIENT_ID: "00000000-0000-4000-8000-000000000000",
  SUPAFANA_STRIPE_PRICE_ID: "price_placeholder",
  SUPAFANA_LOOPS_TX_VERIFICATION_CODE: "placeholder-verification-code",
  SUPAFANA_LOOPS_TX_INSTANCE_READY: "placeholder-instance-ready",
  SUPAFANA_LOOPS_TX_TRIAL_ENDING: "placeholder-trial-ending",
  SUPAFANA_LOOPS_TX_PAYMENT_FAILED: "placeholder-payment-failed",
  SUPAFANA_LOOPS_TX_INSTANCE_DELETED: "placeholder-instance-deleted",
  SUPAFANA_ADMIN_SSH_PUBLIC_KEY:
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPlaceholderPlaceholderPlaceholder0 placeholder",
};

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd: ROOT, env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== "number") {
        reject(new Error(`${cmd} could not run: ${err.message}`));
        return;
      }
      resolve({ code: typeof err?.code === "number" ? err.code : 0, stdout, stderr });
    });
  });
}

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

async function filesUnder(dir: string, suffix: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith(suffix))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

const cliEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("SUPAFANA_")) env[k] = v;
  return {
    ...env,
    // The CLI needs no culture data; without ICU it would refuse to start.
    DOTNET_SYSTEM_GLOBALIZATION_INVARIANT: "1",
    DOTNET_CLI_TELEMETRY_OPTOUT: "1",
    DOTNET_NOLOGO: "1",
    DOTNET_SKIP_FIRST_TIME_EXPERIENCE: "1",
    ...extra,
  };
};

/** The `bicep` executable of the pinned version, restored through NuGet when missing. */
async function ensureCli(): Promise<string> {
  if (process.platform !== "linux" || process.arch !== "x64") {
    throw new Error(
      `tools/bicep/bicep-cli.csproj restores the linux-x64 Bicep CLI; this is ${process.platform}-${process.arch}`,
    );
  }
  const csproj = await readFile(CSPROJ, "utf8");
  const m = /Include="(Azure\.Bicep\.CommandLine\.[\w-]+)"\s+Version="\[([^\]]+)\]"/.exec(csproj);
  if (!m?.[1] || !m[2]) throw new Error(`no pinned Azure.Bicep.CommandLine package in ${CSPROJ}`);
  const [pkg, version] = [m[1].toLowerCase(), m[2]];
  const bin = join(PACKAGES, pkg, version, "tools", "bicep");
  if (!(await exists(bin))) {
    console.log(`bicep-check: restoring ${m[1]} ${version} with dotnet restore`);
    const restored = await run(
      "dotnet",
      ["restore", CSPROJ, "--packages", PACKAGES, "--verbosity", "quiet"],
      cliEnv(),
    ).catch((err: unknown) => {
      throw new Error(
        `dotnet restore could not start (is the .NET SDK installed?): ${String(err)}`,
      );
    });
    if (restored.code !== 0 || !(await exists(bin))) {
      throw new Error(
        `dotnet restore failed (exit ${restored.code}):\n${restored.stdout}${restored.stderr}`,
      );
    }
  }
  // NuGet extracts the executable with the owner's execute bit only (or none).
  await chmod(bin, 0o755);
  return bin;
}

interface Step {
  name: string;
  result: Run;
  diagnostics: Diagnostic[];
}

async function step(name: string, bin: string, args: string[], env: NodeJS.ProcessEnv) {
  const result = await run(bin, args, env);
  const diagnostics = parseDiagnostics(`${result.stdout}\n${result.stderr}`, ROOT);
  return { name, result, diagnostics } satisfies Step;
}

async function main(): Promise<number> {
  const update = process.argv.includes("--update");
  const started = Date.now();
  const bin = await ensureCli();
  const restoredAt = Date.now();
  const out = await mkdtemp(join(tmpdir(), "bicep-check-"));
  try {
    const sources = await filesUnder(BICEP_DIR, ".bicep");
    const params = await filesUnder(BICEP_DIR, ".bicepparam");
    const buildOut = join(out, "build");
    const paramsOut = join(out, "params");
    const steps = await Promise.all([
      step(
        "build",
        bin,
        ["build", "--pattern", "bicep/**/*.bicep", "--outdir", buildOut],
        cliEnv(),
      ),
      step(
        "build-params",
        bin,
        ["build-params", "--pattern", "bicep/**/*.bicepparam", "--outdir", paramsOut],
        cliEnv(PLACEHOLDER_ENV),
      ),
      step("lint", bin, ["lint", "--pattern", "bicep/**/*.bicep"], cliEnv()),
    ]);

    const problems: string[] = [];
    for (const s of steps) {
      if (s.result.code !== 0 && !s.diagnostics.some((d) => d.level === "Error")) {
        problems.push(
          `bicep ${s.name} exited ${s.result.code}:\n${s.result.stdout}${s.result.stderr}`,
        );
      }
    }
    const built = await filesUnder(buildOut, ".json").catch(() => []);
    const builtParams = await filesUnder(paramsOut, ".json").catch(() => []);
    if (built.length !== sources.length)
      problems.push(`bicep build wrote ${built.length} templates for ${sources.length} files`);
    if (builtParams.length !== params.length)
      problems.push(`bicep build-params wrote ${builtParams.length} files for ${params.length}`);

    const verdict = judge(
      dedupe(steps.flatMap((s) => s.diagnostics)),
      parseAllowlist(await readFile(ALLOWLIST, "utf8")),
    );
    for (const d of verdict.errors) problems.push(format(d));
    for (const d of verdict.unexpected)
      problems.push(`${format(d)}\n  (not in bicep/lint-allowlist.txt)`);
    for (const e of verdict.unused)
      problems.push(
        `bicep/lint-allowlist.txt:${e.line}: ${e.code} in ${e.file} matches no warning any more; delete the entry`,
      );
    for (const d of verdict.allowed) console.log(`bicep-check: allowed ${format(d)}`);

    for (const c of COMMITTED) {
      const fresh = join(buildOut, c.source.replace(/\.bicep$/, ".json"));
      const committed = join(BICEP_DIR, c.compiled);
      if (!(await exists(fresh))) continue;
      const [a, b] = await Promise.all([
        readFile(fresh, "utf8"),
        readFile(committed, "utf8").catch(() => ""),
      ]);
      if (a === b) continue;
      if (update) {
        await copyFile(fresh, committed);
        console.log(`bicep-check: updated bicep/${c.compiled}`);
      } else {
        problems.push(
          `bicep/${c.compiled} differs from a fresh compile of bicep/${c.source}: run \`npm run bicep:check -- --update\` and commit it`,
        );
      }
    }

    const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    const summary =
      `${sources.length} templates built, ${params.length} parameter files built, lint run; ` +
      `CLI ready in ${secs(restoredAt - started)}, checks ${secs(Date.now() - restoredAt)}`;
    if (problems.length > 0 || !passed(verdict)) {
      for (const p of problems) console.error(p);
      console.error(`bicep-check: FAILED (${problems.length} problems); ${summary}`);
      return 1;
    }
    console.log(`bicep-check: ok; ${summary}`);
    return 0;
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

if (relative(process.argv[1] ?? "", fileURLToPath(import.meta.url)) === "") {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(`bicep-check: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    },
  );
}
