/**
 * Runs the real `nginx -t` and `promtool` against rendered files, entirely inside throwaway
 * directories (never /etc/nginx). Install the tools with `scripts/ensure-system-packages.sh`.
 */
import { execFileSync, spawnSync } from "node:child_process";
import {
  accessSync,
  constants,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { selfSignedCertificate } from "../../local/tls.js";

export interface ToolResult {
  ok: boolean;
  output: string;
}

function findBinary(name: string, extra: string[]): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(":").filter(Boolean), ...extra];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

function required(name: string, path: string | undefined): string {
  if (path === undefined) {
    throw new Error(`${name} not found; run scripts/ensure-system-packages.sh (as root) first`);
  }
  return path;
}

export function nginxPath(): string {
  return required(
    "nginx",
    findBinary("nginx", ["/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"]),
  );
}

/** The njs dynamic module of Debian's `libnginx-mod-http-js` (njs 0.7.x on Debian 12). */
export const NJS_MODULE_PATH = "/usr/lib/nginx/modules/ngx_http_js_module.so";

export function promtoolPath(): string {
  return required("promtool", findBinary("promtool", ["/usr/local/bin", "/usr/bin"]));
}

/** Major/minor of the installed promtool (e.g. Debian 12 ships 2.42, Prometheus 3.x is current). */
export function promtoolVersion(): { major: number; minor: number } {
  const out = execFileSync(promtoolPath(), ["--version"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  const m = /version (\d+)\.(\d+)/.exec(out);
  if (m === null) throw new Error(`cannot parse promtool version from: ${out}`);
  return { major: Number(m[1]), minor: Number(m[2]) };
}

function run(bin: string, args: string[], timeoutMs = 30_000): ToolResult {
  const res = spawnSync(bin, args, { encoding: "utf8", timeout: timeoutMs });
  const output = `${res.stdout}${res.stderr}${res.error ? String(res.error) : ""}`;
  return { ok: res.status === 0 && res.error === undefined, output };
}

let certCache: { cert: string; key: string } | undefined;

/** One throwaway self-signed certificate per test process, kept in memory, written into each sandbox. */
function selfSignedCert(): { cert: string; key: string } {
  const cert = certCache ?? selfSignedCertificate(["*.grafana.test"]);
  certCache = cert;
  return cert;
}

/** A temp nginx prefix: cert, key, pid, logs and temp paths all live inside `dir`. */
export interface NginxSandbox {
  dir: string;
  configPath: string;
  certificatePath: string;
  certificateKeyPath: string;
  paths: { pid: string; errorLog: string; accessLog: string; tempDir: string };
  cleanup(): void;
}

export function createNginxSandbox(): NginxSandbox {
  const { cert, key } = selfSignedCert();
  const dir = mkdtempSync(join(tmpdir(), "supafana-nginx-"));
  writeFileSync(join(dir, "cert.pem"), cert);
  writeFileSync(join(dir, "key.pem"), key, { mode: 0o600 });
  mkdirSync(join(dir, "logs"));
  mkdirSync(join(dir, "temp"));
  return {
    dir,
    configPath: join(dir, "nginx.conf"),
    certificatePath: join(dir, "cert.pem"),
    certificateKeyPath: join(dir, "key.pem"),
    paths: {
      pid: join(dir, "nginx.pid"),
      errorLog: join(dir, "logs", "error.log"),
      accessLog: join(dir, "logs", "access.log"),
      tempDir: join(dir, "temp"),
    },
    cleanup: () => {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * `nginx -t` on a config, with a temp prefix and errors on stderr. Pass a function to render the
 * config against the sandbox's certificate and paths; with `certs: false` a plain string is
 * tested as is.
 */
export function nginxTest(
  config: string | ((sandbox: NginxSandbox) => string),
  opts: { certs?: boolean; sandbox?: NginxSandbox } = {},
): ToolResult {
  const own = opts.sandbox === undefined;
  const sandbox = opts.sandbox ?? createNginxSandbox();
  try {
    if (opts.certs === false) {
      rmSync(sandbox.certificatePath, { force: true });
      rmSync(sandbox.certificateKeyPath, { force: true });
    }
    const text = typeof config === "string" ? config : config(sandbox);
    writeFileSync(sandbox.configPath, text);
    return run(nginxPath(), [
      "-t",
      "-p",
      `${sandbox.dir}/`,
      "-c",
      sandbox.configPath,
      "-e",
      "stderr",
    ]);
  } finally {
    if (own) sandbox.cleanup();
  }
}

/** `promtool check config` on `<dir>/prometheus.yml` (or on the file, if given one). */
export function promtoolCheckConfig(dirOrFile: string): ToolResult {
  const file = statSync(dirOrFile).isDirectory() ? join(dirOrFile, "prometheus.yml") : dirOrFile;
  return run(promtoolPath(), ["check", "config", file]);
}

export function promtoolCheckRules(file: string): ToolResult {
  return run(promtoolPath(), ["check", "rules", file]);
}

/** `promtool test rules` on a unit-test file (input series + expected alerts). */
export function promtoolTestRules(file: string): ToolResult {
  return run(promtoolPath(), ["test", "rules", file]);
}
