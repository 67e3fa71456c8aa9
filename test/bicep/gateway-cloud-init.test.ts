/**
 * The gateway VM's cloud-init (bicep/gateway/cloud-init.yaml): valid cloud-config, and a
 * certificate fetcher that really works. The fetcher runs here under /bin/sh against a fake
 * instance-metadata endpoint and a fake Key Vault, with certificates made by openssl, exactly as
 * Key Vault returns them (PFX, the default, and PEM).
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";

import { nginxTest } from "../helpers/system-tools.js";
import { BICEP_DIR } from "./bicep-ast.js";

interface CloudConfig {
  packages?: string[];
  write_files?: Array<{ path: string; content: string; permissions?: string; defer?: boolean }>;
  runcmd?: unknown[];
}

const TEMPLATE = readFileSync(join(BICEP_DIR, "gateway", "cloud-init.yaml"), "utf8");

/** What modules/gateway.bicep renders (the same three replacements). */
function render(vaultUri: string, certificateName: string): string {
  return TEMPLATE.replaceAll("__KEY_VAULT_URI__", vaultUri)
    .replaceAll("__CERTIFICATE_NAME__", certificateName)
    .replaceAll("__KEY_VAULT_RESOURCE__", "https://vault.azure.net");
}

const rendered = render("https://kv-dev-abc.vault.azure.net/", "grafana-wildcard");
const config = parseYaml(rendered) as CloudConfig;
const file = (path: string) => {
  const f = config.write_files?.find((w) => w.path === path);
  if (!f) throw new Error(`cloud-init writes no ${path}`);
  return f;
};
const fetcher = file("/usr/local/sbin/supafana-fetch-certificate");

const hasTools = ["sh", "openssl", "curl", "jq"].every(
  (tool) => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0,
);

describe("gateway cloud-init", () => {
  it("when rendered, then it is a cloud-config that installs nginx and fills every placeholder", () => {
    expect(rendered.startsWith("#cloud-config\n")).toBe(true);
    expect(rendered).not.toMatch(/__[A-Z_]+__/);
    expect(config.packages).toEqual(expect.arrayContaining(["nginx", "jq", "curl", "openssl"]));
    expect(fetcher.permissions).toBe("0755");
    expect(fetcher.content).toContain(
      "vault_uri=${SUPAFANA_VAULT_URI:-'https://kv-dev-abc.vault.azure.net/'}",
    );
    expect(file("/etc/systemd/system/supafana-certificate.timer").content).toContain(
      "OnUnitActiveSec=",
    );
    // Written after the nginx package, so dpkg never meets a foreign nginx.conf.
    expect(file("/etc/nginx/nginx.conf").defer).toBe(true);
    expect(JSON.stringify(config.runcmd)).toContain("supafana-certificate.timer");
  });

  it("when the fetch script is checked by sh -n, then it is valid POSIX shell", () => {
    const res = spawnSync("sh", ["-n"], { input: fetcher.content, encoding: "utf8" });
    expect(res.stderr).toBe("");
    expect(res.status).toBe(0);
  });

  it("when the placeholder nginx.conf is tested by nginx -t, then it is valid and serves only 404", () => {
    const res = nginxTest(
      (sandbox) =>
        file("/etc/nginx/nginx.conf")
          .content.replace("user www-data;\n", "")
          .replace("/run/nginx.pid", sandbox.paths.pid)
          .replace("/var/log/nginx/access.log", sandbox.paths.accessLog)
          .replace("/var/log/nginx/error.log", sandbox.paths.errorLog)
          .replace("listen 80 default_server;", "listen 127.0.0.1:18080 default_server;")
          .replace("listen [::]:80 default_server;", "")
          .replace("http {", `http {\n  client_body_temp_path ${sandbox.paths.tempDir};`),
      { certs: false },
    );
    expect(res.output).toContain("syntax is ok");
    expect(res.ok).toBe(true);
    expect(file("/etc/nginx/nginx.conf").content).toContain("return 404;");
  });
});

// ----- the certificate fetcher against fake IMDS + Key Vault ---------------------------------

interface Fake {
  server: Server;
  url: string;
  /** What Key Vault answers for GET /secrets/<name>. */
  secret: { status: number; body?: unknown };
  tokenRequests: string[];
  secretRequests: Array<{ url: string; authorization: string | undefined }>;
}

async function startFake(): Promise<Fake> {
  const fake: Fake = {
    server: createServer(),
    url: "",
    secret: { status: 404 },
    tokenRequests: [],
    secretRequests: [],
  };
  fake.server.on("request", (req, res) => {
    const url = req.url ?? "";
    if (url.startsWith("/metadata/identity/oauth2/token")) {
      fake.tokenRequests.push(url);
      const ok = req.headers.metadata === "true";
      res.writeHead(ok ? 200 : 400, { "content-type": "application/json" });
      res.end(
        JSON.stringify(
          ok ? { access_token: "token-123", token_type: "Bearer" } : { error: "bad_request" },
        ),
      );
      return;
    }
    if (url.startsWith("/secrets/")) {
      fake.secretRequests.push({ url, authorization: req.headers.authorization });
      res.writeHead(fake.secret.status, { "content-type": "application/json" });
      res.end(JSON.stringify(fake.secret.body ?? { error: { code: "SecretNotFound" } }));
      return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((resolve) => fake.server.listen(0, "127.0.0.1", resolve));
  fake.url = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}`;
  return fake;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: "pipe" });
}

/** A CA, an intermediate and a wildcard leaf, like a real chain. */
function makeChain(dir: string): void {
  openssl(
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "2",
      "-subj",
      "/CN=Test Root",
      "-keyout",
      "root.key",
      "-out",
      "root.pem",
    ],
    dir,
  );
  writeFileSync(
    join(dir, "ca.ext"),
    "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
  );
  writeFileSync(join(dir, "leaf.ext"), "subjectAltName=DNS:*.grafana.test\n");
  openssl(
    [
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-subj",
      "/CN=Test Intermediate",
      "-keyout",
      "inter.key",
      "-out",
      "inter.csr",
    ],
    dir,
  );
  openssl(
    [
      "x509",
      "-req",
      "-in",
      "inter.csr",
      "-CA",
      "root.pem",
      "-CAkey",
      "root.key",
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      "ca.ext",
      "-out",
      "inter.pem",
    ],
    dir,
  );
  openssl(
    [
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-subj",
      "/CN=*.grafana.test",
      "-keyout",
      "leaf.key",
      "-out",
      "leaf.csr",
    ],
    dir,
  );
  openssl(
    [
      "x509",
      "-req",
      "-in",
      "leaf.csr",
      "-CA",
      "inter.pem",
      "-CAkey",
      "inter.key",
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      "leaf.ext",
      "-out",
      "leaf.pem",
    ],
    dir,
  );
  openssl(
    [
      "pkcs12",
      "-export",
      "-inkey",
      "leaf.key",
      "-in",
      "leaf.pem",
      "-certfile",
      "inter.pem",
      "-passout",
      "pass:",
      "-out",
      "bundle.pfx",
    ],
    dir,
  );
}

interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

describe.skipIf(!hasTools)("gateway certificate fetcher", () => {
  let fake: Fake;
  let work: string;
  let scriptPath: string;

  beforeAll(async () => {
    fake = await startFake();
    work = mkdtempSync(join(tmpdir(), "supafana-gw-cert-"));
    makeChain(work);
    scriptPath = join(work, "fetch.sh");
    writeFileSync(scriptPath, fetcher.content, { mode: 0o755 });
  });

  afterAll(async () => {
    await new Promise<void>((resolve) =>
      fake.server.close(() => {
        resolve();
      }),
    );
    rmSync(work, { recursive: true, force: true });
  });

  function run(tlsDir: string): Promise<RunResult> {
    return new Promise((resolve) => {
      const child = spawn("sh", [scriptPath], {
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          SUPAFANA_VAULT_URI: `${fake.url}/`,
          SUPAFANA_IMDS_ENDPOINT: fake.url,
          SUPAFANA_TLS_DIR: tlsDir,
          SUPAFANA_NGINX: "true",
          SUPAFANA_NGINX_RELOAD: `touch ${join(tlsDir, "..", "reloaded")}`,
        },
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.on("close", (status) => {
        resolve({ status, stdout, stderr });
      });
    });
  }

  const pem = (name: string) => readFileSync(join(work, name), "utf8");
  const pubkeyOfCert = (path: string) =>
    execFileSync("openssl", ["x509", "-in", path, "-noout", "-pubkey"], { encoding: "utf8" });
  const pubkeyOfKey = (path: string) =>
    execFileSync("openssl", ["pkey", "-in", path, "-pubout"], { encoding: "utf8" });

  it("when the certificate is a PFX (the Key Vault default), then leaf-first chain and key are installed and nginx reloaded", async () => {
    const out = mkdtempSync(join(work, "pfx-"));
    const tlsDir = join(out, "tls");
    fake.secret = {
      status: 200,
      body: {
        value: readFileSync(join(work, "bundle.pfx")).toString("base64"),
        contentType: "application/x-pkcs12",
      },
    };
    const res = await run(tlsDir);
    expect(res.stderr).toBe("");
    expect(res.status).toBe(0);
    expect(res.stdout).toContain("installed");

    const chain = readFileSync(join(tlsDir, "fullchain.pem"), "utf8");
    expect(chain.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    expect(pubkeyOfCert(join(tlsDir, "fullchain.pem"))).toBe(
      pubkeyOfKey(join(tlsDir, "privkey.pem")),
    );
    expect(pubkeyOfKey(join(tlsDir, "privkey.pem"))).toBe(pubkeyOfKey(join(work, "leaf.key")));
    expect(statSync(join(tlsDir, "privkey.pem")).mode & 0o777).toBe(0o600);
    expect(existsSync(join(out, "reloaded"))).toBe(true);
    expect(fake.tokenRequests.at(-1)).toContain("resource=https://vault.azure.net");
    expect(fake.secretRequests.at(-1)).toEqual({
      url: "/secrets/grafana-wildcard?api-version=7.4",
      authorization: "Bearer token-123",
    });
  });

  it("when the certificate is PEM with the chain before the leaf, then the leaf is put first", async () => {
    const out = mkdtempSync(join(work, "pem-"));
    const tlsDir = join(out, "tls");
    fake.secret = {
      status: 200,
      body: {
        value: pem("inter.pem") + pem("leaf.key") + pem("leaf.pem"),
        contentType: "application/x-pem-file",
      },
    };
    const first = await run(tlsDir);
    expect(first.status).toBe(0);
    const chain = readFileSync(join(tlsDir, "fullchain.pem"), "utf8");
    expect(chain.startsWith(pem("leaf.pem"))).toBe(true);
    expect(chain).toContain(pem("inter.pem"));

    // The timer runs it again: nothing changed, so nothing is installed or reloaded.
    rmSync(join(out, "reloaded"));
    const mtime = statSync(join(tlsDir, "fullchain.pem")).mtimeMs;
    const second = await run(tlsDir);
    expect(second.status).toBe(0);
    expect(second.stdout).toBe("");
    expect(existsSync(join(out, "reloaded"))).toBe(false);
    expect(statSync(join(tlsDir, "fullchain.pem")).mtimeMs).toBe(mtime);
  });

  it("when the VM may not read the secret yet, then it fails with the reason and installs nothing", async () => {
    const out = mkdtempSync(join(work, "denied-"));
    fake.secret = { status: 403, body: { error: { code: "Forbidden" } } };
    const denied = await run(join(out, "tls"));
    expect(denied.status).not.toBe(0);
    expect(denied.stderr).toContain("gatewayCertificateImported = true");
    expect(existsSync(join(out, "tls"))).toBe(false);

    fake.secret = { status: 404 };
    const missing = await run(join(out, "tls"));
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toContain("is not in Key Vault yet");
  });

  it("when the key does not match any certificate, then it refuses to install", async () => {
    const out = mkdtempSync(join(work, "mismatch-"));
    fake.secret = {
      status: 200,
      body: { value: pem("inter.key") + pem("leaf.pem"), contentType: "application/x-pem-file" },
    };
    const res = await run(join(out, "tls"));
    expect(res.status).not.toBe(0);
    expect(res.stderr).toContain("no certificate matches the private key");
    expect(existsSync(join(out, "tls", "privkey.pem"))).toBe(false);
  });
});

const keysFetcher = file("/usr/local/sbin/supafana-fetch-signin-keys");

describe("gateway cloud-init: Grafana sign-in", () => {
  it("when rendered, then it installs the njs module and keeps the key set current on a timer", () => {
    expect(config.packages).toContain("libnginx-mod-http-js");
    expect(keysFetcher.permissions).toBe("0755");
    expect(keysFetcher.content).toContain(
      "vault_uri=${SUPAFANA_VAULT_URI:-'https://kv-dev-abc.vault.azure.net/'}",
    );
    expect(keysFetcher.content).toContain(
      "secret_name=${SUPAFANA_SIGNIN_KEYS_SECRET:-grafana-session-keys}",
    );
    expect(file("/etc/systemd/system/supafana-signin-keys.timer").content).toContain(
      "OnUnitActiveSec=5min",
    );
    expect(JSON.stringify(config.runcmd)).toContain("supafana-signin-keys.timer");
    const res = spawnSync("sh", ["-n"], { input: keysFetcher.content, encoding: "utf8" });
    expect(res.stderr).toBe("");
    expect(res.status).toBe(0);
  });
});

describe.skipIf(!hasTools || process.getuid?.() !== 0)("gateway sign-in key fetcher", () => {
  let fake: Fake;
  let work: string;
  let scriptPath: string;
  const group = () => execFileSync("id", ["-gn"], { encoding: "utf8" }).trim();

  beforeAll(async () => {
    fake = await startFake();
    work = mkdtempSync(join(tmpdir(), "supafana-gw-keys-"));
    scriptPath = join(work, "fetch-keys.sh");
    writeFileSync(scriptPath, keysFetcher.content, { mode: 0o755 });
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => fake.server.close(() => resolve()));
    rmSync(work, { recursive: true, force: true });
  });

  const run = (dir: string) =>
    new Promise<RunResult>((resolve) => {
      writeFileSync(join(dir, "reload.sh"), `echo reload >> ${join(dir, "reloads")}\n`);
      const child = spawn("sh", [scriptPath], {
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          SUPAFANA_VAULT_URI: `${fake.url}/`,
          SUPAFANA_IMDS_ENDPOINT: fake.url,
          SUPAFANA_SIGNIN_KEYS_DIR: join(dir, "keys"),
          SUPAFANA_USED_TICKETS_DIR: join(dir, "used"),
          SUPAFANA_NGINX_USER: group(),
          SUPAFANA_NGINX: "true",
          SUPAFANA_NGINX_RELOAD: `sh ${join(dir, "reload.sh")}`,
        },
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.on("close", (status) => resolve({ status, stdout, stderr }));
    });
  const reloads = (dir: string) =>
    existsSync(join(dir, "reloads"))
      ? readFileSync(join(dir, "reloads"), "utf8").split("\n").filter(Boolean).length
      : 0;

  it("when the key set is new or rotated, then it is installed 0640 for the nginx group and nginx reloaded once per change", async () => {
    const dir = mkdtempSync(join(work, "run-"));
    const v1 = JSON.stringify({ "2026-01": Buffer.alloc(32, 1).toString("base64") });
    fake.secret = { status: 200, body: { value: v1 } };
    const first = await run(dir);
    expect(first.stderr).toBe("");
    expect(first.status).toBe(0);
    const installed = join(dir, "keys", "grafana-session-keys.json");
    expect(readFileSync(installed, "utf8")).toBe(`${v1}\n`);
    expect(statSync(installed).mode & 0o777).toBe(0o640);
    expect(statSync(join(dir, "used")).mode & 0o777).toBe(0o700);
    expect(reloads(dir)).toBe(1);
    expect(fake.secretRequests.at(-1)?.url).toMatch(/^\/secrets\/grafana-session-keys\?/);
    expect(fake.secretRequests.at(-1)?.authorization).toBe("Bearer token-123");

    expect((await run(dir)).status).toBe(0);
    expect(reloads(dir)).toBe(1);

    const v2 = JSON.stringify({
      "2026-01": Buffer.alloc(32, 1).toString("base64"),
      "2026-02": Buffer.alloc(32, 2).toString("base64"),
    });
    fake.secret = { status: 200, body: { value: v2 } };
    const rotated = await run(dir);
    expect(rotated.stdout).toContain("installed kids 2026-01,2026-02");
    expect(readFileSync(installed, "utf8")).toBe(`${v2}\n`);
    expect(reloads(dir)).toBe(2);
  });

  it("when the secret is not a key set, or not readable yet, then nothing is installed", async () => {
    const dir = mkdtempSync(join(work, "run-"));
    for (const [secret, reason] of [
      [{ status: 200, body: { value: "[1,2]" } }, "not a JSON object of kid"],
      [
        { status: 200, body: { value: JSON.stringify({ "bad kid": "x" }) } },
        "not a JSON object of kid",
      ],
      [{ status: 403, body: {} }, "gatewayCertificateImported"],
    ] as const) {
      fake.secret = secret;
      const res = await run(dir);
      expect(res.status).not.toBe(0);
      expect(res.stderr).toContain(reason);
      expect(existsSync(join(dir, "keys", "grafana-session-keys.json"))).toBe(false);
    }
    expect(reloads(dir)).toBe(0);
  });

  it("when burnt-ticket markers are older than ten minutes, then they are pruned", async () => {
    const dir = mkdtempSync(join(work, "run-"));
    fake.secret = { status: 200, body: { value: JSON.stringify({ k: "a" }) } };
    expect((await run(dir)).status).toBe(0);
    const old = join(dir, "used", "old-ticket-id-000000");
    const fresh = join(dir, "used", "new-ticket-id-000000");
    writeFileSync(old, "");
    writeFileSync(fresh, "");
    const elevenMinutesAgo = new Date(Date.now() - 11 * 60_000);
    utimesSync(old, elevenMinutesAgo, elevenMinutesAgo);
    expect((await run(dir)).status).toBe(0);
    expect(existsSync(old)).toBe(false);
    expect(existsSync(fresh)).toBe(true);
  });
});
