/**
 * Renders the whole nginx.conf of the gateway VM from the list of live routes.
 *
 * The gateway terminates TLS for `*.<domain>` with one wildcard certificate and forwards
 * `<ref>.<domain>` to that project's Grafana VM (`<private-ip>:3000`) over the VNet. The file is
 * always rendered whole (never patched), deterministically (routes sorted by ref, no timestamps),
 * so the same set of routes always yields the same bytes and the same {@link gatewayConfigHash}.
 *
 * Every value that reaches the file is validated first (refs, IPv4 addresses, ports, the domain,
 * paths, sizes): a bad value throws {@link GatewayConfigError} instead of rendering text that nginx
 * would interpret.
 */
import { createHash } from "node:crypto";

import { DENIED_PATH, EXCHANGE_PATH } from "./signin-njs.js";

export interface GatewayRoute {
  /** Supabase project ref: exactly 20 lowercase letters. */
  ref: string;
  /** Private IPv4 address of the project's Grafana VM (dotted quad). */
  privateIp: string;
  /** Grafana port on that VM; defaults to {@link DEFAULT_GRAFANA_PORT}. */
  port?: number;
}

export interface GatewayPaths {
  /** Defaults to `/run/nginx.pid`. */
  pid?: string;
  /** Defaults to `/var/log/nginx/error.log`. */
  errorLog?: string;
  /** Defaults to `/var/log/nginx/access.log`. */
  accessLog?: string;
  /**
   * Directory for nginx's temporary files (request bodies, proxy buffers). When omitted the
   * package's compiled-in paths are used; tests point it into a throwaway directory.
   */
  tempDir?: string;
}

export interface GatewayRenderOptions {
  /** The Grafana domain, e.g. `grafana.example.com`; instances live at `<ref>.<domain>`. */
  domain: string;
  /** Wildcard certificate (full chain) for `*.<domain>`. */
  certificatePath: string;
  certificateKeyPath: string;
  /** Per-client-IP request rate (requests per second); default 20. */
  rateLimitPerSecond?: number;
  /** Requests above the rate that are still accepted in a burst; default 40. */
  burst?: number;
  /** Concurrent connections per client IP; default 100. */
  connectionsPerIp?: number;
  /** nginx size syntax (`10m`, `512k`); default `10m`. */
  clientMaxBodySize?: string;
  /** Worker user; default `www-data` (Debian/Ubuntu). `null` leaves the directive out. */
  user?: string | null;
  /** Listening ports; default 80 and 443. */
  listen?: { http?: number; https?: number };
  /**
   * How HTTP/2 is switched on. `listen-parameter` (`listen 443 ssl http2`) works on every nginx
   * the gateway may run (1.22 on Debian 12, 1.24 on Ubuntu 24.04); `directive` (`http2 on;`)
   * needs nginx >= 1.25.1, where the listen parameter is deprecated.
   */
  http2?: "listen-parameter" | "directive";
  /** Default 4096. */
  workerConnections?: number;
  paths?: GatewayPaths;
  /** The Grafana sign-in (njs): without it requests are proxied without an identity. */
  signin?: GatewaySigninOptions;
}

export interface GatewaySigninOptions {
  /** The njs module rendered by `renderSigninScript` (a content-addressed file). */
  scriptPath: string;
  /** Debian/Ubuntu `libnginx-mod-http-js`; default {@link NJS_MODULE_PATH}. */
  njsModulePath?: string;
  /** Per ref: sessions and tickets issued before this moment (epoch seconds) are refused. */
  notBefore?: ReadonlyMap<string, number>;
}

const DEFAULT_GRAFANA_PORT = 3000;
export const NJS_MODULE_PATH = "/usr/lib/nginx/modules/ngx_http_js_module.so";

export class GatewayConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GatewayConfigError";
  }
}

const REF_RE = /^[a-z]{20}$/;
const OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
const IPV4_RE = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);
const LABEL_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const PATH_RE = /^\/[A-Za-z0-9._\-/]+$/;
const SIZE_RE = /^[1-9][0-9]{0,9}[kKmMgG]?$/;
const USER_RE = /^[a-z_][a-z0-9_-]{0,31}$/;

export function isValidRef(ref: string): boolean {
  return REF_RE.test(ref);
}

/** Dotted-quad IPv4 with no leading zeros (`10.0.0.4`, not `10.0.0.04`). */
export function isValidIpv4(ip: string): boolean {
  return IPV4_RE.test(ip);
}

/**
 * Validates and lowercases a DNS domain. `<ref>.<domain>` must stay a valid hostname, so the
 * domain may be at most 253 - 21 characters.
 */
function normalizeDomain(domain: string): string {
  const d = domain.toLowerCase();
  const labels = d.split(".");
  if (
    d.length === 0 ||
    d.length > 253 - 21 ||
    labels.length < 2 ||
    !labels.every((l) => LABEL_RE.test(l)) ||
    /^[0-9]+$/.test(labels[labels.length - 1] ?? "")
  ) {
    throw new GatewayConfigError(`invalid domain: ${JSON.stringify(domain)}`);
  }
  return d;
}

function checkInt(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new GatewayConfigError(`${name} must be an integer in [${min}, ${max}], got ${value}`);
  }
  return value;
}

function checkPath(name: string, value: string): string {
  if (!PATH_RE.test(value) || value.split("/").includes("..")) {
    throw new GatewayConfigError(`${name} must be an absolute path of [A-Za-z0-9._-/]`);
  }
  return value;
}

interface NormalizedRoute {
  ref: string;
  upstream: string;
}

/** Validates, dedupes and sorts routes by ref. Conflicting duplicates (same ref, different target) throw. */
function normalizeRoutes(routes: readonly GatewayRoute[]): NormalizedRoute[] {
  const byRef = new Map<string, string>();
  for (const route of routes) {
    if (!isValidRef(route.ref)) {
      throw new GatewayConfigError(`invalid ref: ${JSON.stringify(route.ref)}`);
    }
    if (!isValidIpv4(route.privateIp)) {
      throw new GatewayConfigError(
        `invalid IPv4 address for ${route.ref}: ${JSON.stringify(route.privateIp)}`,
      );
    }
    const port = checkInt(`port for ${route.ref}`, route.port ?? DEFAULT_GRAFANA_PORT, 1, 65535);
    const upstream = `${route.privateIp}:${port}`;
    const existing = byRef.get(route.ref);
    if (existing !== undefined && existing !== upstream) {
      throw new GatewayConfigError(
        `conflicting routes for ${route.ref}: ${existing} and ${upstream}`,
      );
    }
    byRef.set(route.ref, upstream);
  }
  return [...byRef.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([ref, upstream]) => ({ ref, upstream }));
}

function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/**
 * A hash bucket must hold at least one key (nginx stores a pointer plus the key padded to 8
 * bytes); leave room for several so the hash can be built with few buckets.
 */
function bucketSizeFor(longestKey: number): number {
  return Math.max(128, nextPowerOfTwo((8 + Math.ceil((longestKey + 2) / 8) * 8) * 2));
}

const TLS_CIPHERS = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

const NOT_FOUND_BODY =
  '{"error":{"code":"not_found","message":"No Grafana instance at this address"}}';

export function renderGatewayConfig(
  routes: readonly GatewayRoute[],
  opts: GatewayRenderOptions,
): string {
  const domain = normalizeDomain(opts.domain);
  const cert = checkPath("certificatePath", opts.certificatePath);
  const certKey = checkPath("certificateKeyPath", opts.certificateKeyPath);
  const rate = checkInt("rateLimitPerSecond", opts.rateLimitPerSecond ?? 20, 1, 100_000);
  const burst = checkInt("burst", opts.burst ?? 40, 0, 1_000_000);
  const connections = checkInt("connectionsPerIp", opts.connectionsPerIp ?? 100, 1, 1_000_000);
  const workerConnections = checkInt(
    "workerConnections",
    opts.workerConnections ?? 4096,
    64,
    1_000_000,
  );
  const httpPort = checkInt("listen.http", opts.listen?.http ?? 80, 1, 65535);
  const httpsPort = checkInt("listen.https", opts.listen?.https ?? 443, 1, 65535);
  if (httpPort === httpsPort)
    throw new GatewayConfigError("listen.http and listen.https must differ");
  const bodySize = opts.clientMaxBodySize ?? "10m";
  if (!SIZE_RE.test(bodySize)) {
    throw new GatewayConfigError(
      `clientMaxBodySize must look like 10m/512k, got ${JSON.stringify(bodySize)}`,
    );
  }
  const user = opts.user === undefined ? "www-data" : opts.user;
  if (user !== null && !USER_RE.test(user)) {
    throw new GatewayConfigError(`invalid user: ${JSON.stringify(user)}`);
  }
  const http2 = opts.http2 ?? "listen-parameter";
  const pid = checkPath("paths.pid", opts.paths?.pid ?? "/run/nginx.pid");
  const errorLog = checkPath("paths.errorLog", opts.paths?.errorLog ?? "/var/log/nginx/error.log");
  const accessLog = checkPath(
    "paths.accessLog",
    opts.paths?.accessLog ?? "/var/log/nginx/access.log",
  );
  const tempDir =
    opts.paths?.tempDir === undefined ? undefined : checkPath("paths.tempDir", opts.paths.tempDir);

  const entries = normalizeRoutes(routes);
  const signin =
    opts.signin === undefined
      ? undefined
      : {
          script: checkPath("signin.scriptPath", opts.signin.scriptPath),
          module: checkPath("signin.njsModulePath", opts.signin.njsModulePath ?? NJS_MODULE_PATH),
          notBefore: [...(opts.signin.notBefore ?? new Map<string, number>()).entries()]
            .filter(([ref]) => entries.some((e) => e.ref === ref))
            .map(([ref, at]) => [ref, checkInt(`notBefore for ${ref}`, at, 0, 1e11)] as const)
            .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        };
  const longestKey = 21 + domain.length;
  const bucketSize = bucketSizeFor(longestKey);
  const mapMaxSize = Math.max(2048, nextPowerOfTwo(entries.length * 2));
  const h2Listen = http2 === "listen-parameter" ? " http2" : "";

  const out: string[] = [];
  const line = (s: string) => out.push(s);

  line(
    "# Supafana gateway: generated from the instances table. Do not edit; it is replaced whole.",
  );
  line(`# routes: ${entries.length}`);
  if (signin !== undefined) line(`load_module ${signin.module};`);
  if (user !== null) line(`user ${user};`);
  line("worker_processes auto;");
  line("worker_rlimit_nofile 65535;");
  line(`pid ${pid};`);
  line(`error_log ${errorLog} warn;`);
  line("");
  line("events {");
  line(`    worker_connections ${workerConnections};`);
  line("}");
  line("");
  line("http {");
  line("    server_tokens off;");
  line("    default_type application/octet-stream;");
  line("    keepalive_timeout 65s;");
  line(`    client_max_body_size ${bodySize};`);
  line(`    server_names_hash_bucket_size ${bucketSize};`);
  line(`    map_hash_bucket_size ${bucketSize};`);
  line(`    map_hash_max_size ${mapMaxSize};`);
  if (tempDir !== undefined) {
    line(`    client_body_temp_path ${tempDir}/client_body;`);
    line(`    proxy_temp_path ${tempDir}/proxy;`);
    line(`    fastcgi_temp_path ${tempDir}/fastcgi;`);
    line(`    uwsgi_temp_path ${tempDir}/uwsgi;`);
    line(`    scgi_temp_path ${tempDir}/scgi;`);
  }
  line("");
  line("    # Access log without query strings (they can carry tokens).");
  line("    log_format supafana_json escape=json");
  line(
    `        '{"time":"$time_iso8601","client":"$remote_addr","host":"$host",` +
      `"method":"$request_method","path":"$uri","status":$status,` +
      `"bytes":$body_bytes_sent,"duration":$request_time,"upstream":"$upstream_addr",` +
      `"upstream_status":"$upstream_status","upstream_duration":"$upstream_response_time",` +
      `"user_agent":"$http_user_agent"}';`,
  );
  line(`    access_log ${accessLog} supafana_json;`);
  line("");
  line(`    limit_req_zone $binary_remote_addr zone=supafana_req:10m rate=${rate}r/s;`);
  line("    limit_conn_zone $binary_remote_addr zone=supafana_conn:10m;");
  line("    limit_req_status 429;");
  line("    limit_conn_status 429;");
  line("");
  line("    ssl_protocols TLSv1.2 TLSv1.3;");
  line(`    ssl_ciphers ${TLS_CIPHERS};`);
  line("    ssl_prefer_server_ciphers off;");
  line("    ssl_session_cache shared:SupafanaTLS:10m;");
  line("    ssl_session_timeout 1d;");
  line("    ssl_session_tickets off;");
  line("");
  line("    # Grafana Live uses websockets.");
  line("    map $http_upgrade $connection_upgrade {");
  line("        default upgrade;");
  line("        '' close;");
  line("    }");
  line("");
  if (signin !== undefined) {
    line("    # Grafana sign-in: the gateway verifies the session cookie itself (njs, one HMAC)");
    line("    # and sends the identity to Grafana's auth proxy; see lib/gateway/signin-njs.ts.");
    line(`    js_import supafana_signin from ${signin.script};`);
    line("    js_set $supafana_auth supafana_signin.authenticate;");
    line("    js_var $supafana_user;");
    line("    js_var $supafana_email;");
    line("    js_var $supafana_name;");
    line("    js_var $supafana_role;");
    line("    # Revoked sign-ins: per host, sessions issued before this moment are refused.");
    line("    map $host $supafana_not_before {");
    line("        default 0;");
    for (const [ref, at] of signin.notBefore) line(`        ${ref}.${domain} ${at};`);
    line("    }");
    line("");
  }
  line("    # Exact host names only; nginx lowercases $host and matches map strings without case.");
  line("    map $host $grafana_upstream {");
  line('        default "";');
  for (const e of entries) line(`        ${e.ref}.${domain} ${e.upstream};`);
  line("    }");
  line("");
  line("    # Plain HTTP: redirect our names to HTTPS, drop everything else.");
  line("    server {");
  line(`        listen ${httpPort} default_server;`);
  line("        server_name _;");
  line("        return 444;");
  line("    }");
  line("    server {");
  line(`        listen ${httpPort};`);
  line(`        server_name *.${domain};`);
  line("        return 301 https://$host$request_uri;");
  line("    }");
  line("");
  line("    # TLS for names we do not serve: refuse the handshake (no certificate is revealed).");
  line("    server {");
  line(`        listen ${httpsPort} ssl${h2Listen} default_server;`);
  if (http2 === "directive") line("        http2 on;");
  line("        server_name _;");
  line("        ssl_reject_handshake on;");
  line("    }");
  line("");
  line("    server {");
  line(`        listen ${httpsPort} ssl${h2Listen};`);
  if (http2 === "directive") line("        http2 on;");
  line(`        server_name *.${domain};`);
  line(`        ssl_certificate ${cert};`);
  line(`        ssl_certificate_key ${certKey};`);
  line("");
  // nginx rejects `burst=0`; without a burst every request above the rate is refused.
  line(
    burst > 0
      ? `        limit_req zone=supafana_req burst=${burst} nodelay;`
      : "        limit_req zone=supafana_req;",
  );
  line(`        limit_conn supafana_conn ${connections};`);
  line("");
  line("        # Grafana's own copies are replaced by ours so each header is sent once.");
  line("        proxy_hide_header X-Frame-Options;");
  line("        proxy_hide_header X-Content-Type-Options;");
  line("        proxy_hide_header Strict-Transport-Security;");
  line("        proxy_hide_header Referrer-Policy;");
  line(
    '        add_header Strict-Transport-Security "max-age=31536000; includeSubDomains" always;',
  );
  line('        add_header X-Content-Type-Options "nosniff" always;');
  line('        add_header Referrer-Policy "strict-origin-when-cross-origin" always;');
  line('        add_header X-Frame-Options "SAMEORIGIN" always;');
  line("");
  if (signin !== undefined) {
    line("        # A one-time ticket from the app becomes this host's session cookie.");
    line(`        location = ${EXCHANGE_PATH} {`);
    line("            default_type application/json;");
    line('            if ($grafana_upstream = "") {');
    line(`                return 404 '${NOT_FOUND_BODY}';`);
    line("            }");
    line("            js_content supafana_signin.exchange;");
    line("        }");
    line(`        location = ${DENIED_PATH} {`);
    line("            internal;");
    line("            js_content supafana_signin.denied;");
    line("        }");
    line("");
  }
  line("        location / {");
  line("            default_type application/json;");
  line('            if ($grafana_upstream = "") {');
  line(`                return 404 '${NOT_FOUND_BODY}';`);
  line("            }");
  if (signin !== undefined) {
    line('            if ($supafana_auth != "") {');
    line(`                rewrite ^ ${DENIED_PATH} last;`);
    line("            }");
  }
  line("            proxy_pass http://$grafana_upstream;");
  line("            proxy_http_version 1.1;");
  line("            proxy_set_header Host $host;");
  line("            proxy_set_header X-Real-IP $remote_addr;");
  line(
    "            # The gateway is the edge: client-supplied forwarding headers are not trusted.",
  );
  line("            proxy_set_header X-Forwarded-For $remote_addr;");
  line("            proxy_set_header X-Forwarded-Proto https;");
  line("            proxy_set_header X-Forwarded-Host $host;");
  if (signin !== undefined) {
    line(
      "            # The verified identity; these replace any client-sent header of the same name.",
    );
    line("            proxy_set_header X-WEBAUTH-USER $supafana_user;");
    line("            proxy_set_header X-WEBAUTH-EMAIL $supafana_email;");
    line("            proxy_set_header X-WEBAUTH-NAME $supafana_name;");
    line("            proxy_set_header X-WEBAUTH-ROLE $supafana_role;");
  }
  line("            proxy_set_header Upgrade $http_upgrade;");
  line("            proxy_set_header Connection $connection_upgrade;");
  line("            proxy_connect_timeout 5s;");
  line("            proxy_send_timeout 300s;");
  line("            proxy_read_timeout 300s;");
  line("        }");
  line("    }");
  line("}");
  line("");
  return out.join("\n");
}

/** sha256 of the rendered config, lowercase hex. */
export function gatewayConfigHash(config: string): string {
  return createHash("sha256").update(config, "utf8").digest("hex");
}
