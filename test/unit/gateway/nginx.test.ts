import { writeFileSync } from "node:fs";

import fc from "fast-check";
import { describe, expect, it } from "vitest";

import {
  GatewayConfigError,
  NJS_MODULE_PATH,
  gatewayConfigHash,
  renderGatewayConfig,
  type GatewayRenderOptions,
  type GatewayRoute,
} from "../../../lib/gateway/nginx.js";
import { renderSigninScript, signinScriptFileName } from "../../../lib/gateway/signin-njs.js";
import { createNginxSandbox, nginxTest, type NginxSandbox } from "../../helpers/system-tools.js";
import { parseUpstreamMap, refOf } from "./helpers.js";

const DOMAIN = "grafana.example.com";

function optionsFor(
  sandbox: NginxSandbox,
  extra: Partial<GatewayRenderOptions> = {},
): GatewayRenderOptions {
  return {
    domain: DOMAIN,
    certificatePath: sandbox.certificatePath,
    certificateKeyPath: sandbox.certificateKeyPath,
    paths: sandbox.paths,
    ...extra,
  };
}

const PROD_OPTS: GatewayRenderOptions = {
  domain: DOMAIN,
  certificatePath: "/etc/nginx/tls/wildcard.pem",
  certificateKeyPath: "/etc/nginx/tls/wildcard.key",
};

function manyRoutes(n: number): GatewayRoute[] {
  return Array.from({ length: n }, (_, i) => ({
    ref: refOf(i * 7919 + 17),
    privateIp: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255 || 1}`,
  }));
}

describe("renderGatewayConfig passes the real nginx -t", () => {
  it.each([0, 1, 250])("when there are %i routes, then nginx accepts the config", (n) => {
    const result = nginxTest((sb) => renderGatewayConfig(manyRoutes(n), optionsFor(sb)));
    expect(result.output).toContain("test is successful");
    expect(result.ok).toBe(true);
  });

  it("when there are 5,000 routes on a long domain, then nginx still builds the map hash", () => {
    const long = `${"a".repeat(60)}.${"b".repeat(60)}.${"c".repeat(40)}.example.com`;
    const result = nginxTest((sb) =>
      renderGatewayConfig(manyRoutes(5000), { ...optionsFor(sb), domain: long }),
    );
    expect(result.output).toContain("test is successful");
  });

  it("when HTTP/2 is requested as a directive, then the config names it that way", () => {
    const config = renderGatewayConfig(manyRoutes(2), { ...PROD_OPTS, http2: "directive" });
    expect(config).toContain("http2 on;");
    expect(config).not.toMatch(/listen \d+ ssl http2/);
  });

  it("when the config is broken on purpose, then the helper reports the failure", () => {
    const result = nginxTest((sb) =>
      renderGatewayConfig([], optionsFor(sb)).replace("events {", "events {{"),
    );
    expect(result.ok).toBe(false);
  });

  it("for random route sets, nginx accepts the config and the map holds exactly the input", () => {
    const sandbox = createNginxSandbox();
    try {
      const letter = fc.constantFrom(
        ...Array.from({ length: 26 }, (_, i) => String.fromCharCode(97 + i)),
      );
      const route = fc.record(
        {
          ref: fc.array(letter, { minLength: 20, maxLength: 20 }).map((l) => l.join("")),
          privateIp: fc
            .tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255))
            .map((o) => o.join(".")),
          port: fc.integer({ min: 1, max: 65535 }),
        },
        { requiredKeys: ["ref", "privateIp"] },
      );
      fc.assert(
        fc.property(fc.uniqueArray(route, { selector: (r) => r.ref, maxLength: 60 }), (routes) => {
          const config = renderGatewayConfig(routes, optionsFor(sandbox));
          const result = nginxTest(config, { sandbox });
          expect(result.output).toContain("test is successful");
          const expected = new Map(
            routes.map((r) => [`${r.ref}.${DOMAIN}`, `${r.privateIp}:${r.port ?? 3000}`]),
          );
          expect(parseUpstreamMap(config)).toEqual(expected);
        }),
        { numRuns: 25 },
      );
    } finally {
      sandbox.cleanup();
    }
  });
});

describe("renderGatewayConfig content", () => {
  it("when routes arrive unsorted and repeated, then the output is sorted, deduped and identical", () => {
    const a = { ref: "bbbbbbbbbbbbbbbbbbbb", privateIp: "10.0.0.5" };
    const b = { ref: "aaaaaaaaaaaaaaaaaaaa", privateIp: "10.0.0.4", port: 3000 };
    const first = renderGatewayConfig([a, b, a], PROD_OPTS);
    const second = renderGatewayConfig([b, a], PROD_OPTS);
    expect(first).toBe(second);
    expect(gatewayConfigHash(first)).toBe(gatewayConfigHash(second));
    expect([...parseUpstreamMap(first).keys()]).toEqual([
      `aaaaaaaaaaaaaaaaaaaa.${DOMAIN}`,
      `bbbbbbbbbbbbbbbbbbbb.${DOMAIN}`,
    ]);
  });

  it("when one ref points at two different targets, then rendering refuses", () => {
    expect(() =>
      renderGatewayConfig(
        [
          { ref: "aaaaaaaaaaaaaaaaaaaa", privateIp: "10.0.0.4" },
          { ref: "aaaaaaaaaaaaaaaaaaaa", privateIp: "10.0.0.5" },
        ],
        PROD_OPTS,
      ),
    ).toThrow(GatewayConfigError);
  });

  it("when the domain is given in upper case, then names are rendered lower case", () => {
    const config = renderGatewayConfig([{ ref: "aaaaaaaaaaaaaaaaaaaa", privateIp: "10.0.0.4" }], {
      ...PROD_OPTS,
      domain: "Grafana.Example.COM",
    });
    expect(config).toContain(`aaaaaaaaaaaaaaaaaaaa.${DOMAIN} 10.0.0.4:3000;`);
    expect(config).toContain(`server_name *.${DOMAIN};`);
  });

  it("has the security, TLS, websocket, limits and proxy settings", () => {
    const config = renderGatewayConfig([], {
      ...PROD_OPTS,
      rateLimitPerSecond: 7,
      burst: 9,
      clientMaxBodySize: "2m",
    });
    for (const fragment of [
      "server_tokens off;",
      "ssl_protocols TLSv1.2 TLSv1.3;",
      "ssl_reject_handshake on;",
      "listen 443 ssl http2 default_server;",
      "listen 443 ssl http2;",
      `ssl_certificate ${PROD_OPTS.certificatePath};`,
      `ssl_certificate_key ${PROD_OPTS.certificateKeyPath};`,
      "return 301 https://$host$request_uri;",
      "map $http_upgrade $connection_upgrade",
      "proxy_set_header Upgrade $http_upgrade;",
      "proxy_set_header Connection $connection_upgrade;",
      "proxy_set_header Host $host;",
      "proxy_set_header X-Real-IP $remote_addr;",
      "proxy_set_header X-Forwarded-For $remote_addr;",
      "proxy_set_header X-Forwarded-Proto https;",
      "proxy_pass http://$grafana_upstream;",
      "proxy_connect_timeout 5s;",
      "proxy_read_timeout 300s;",
      'add_header Strict-Transport-Security "max-age=31536000; includeSubDomains" always;',
      'add_header X-Content-Type-Options "nosniff" always;',
      'add_header Referrer-Policy "strict-origin-when-cross-origin" always;',
      'add_header X-Frame-Options "SAMEORIGIN" always;',
      "limit_req_zone $binary_remote_addr zone=supafana_req:10m rate=7r/s;",
      "limit_req zone=supafana_req burst=9 nodelay;",
      "limit_conn supafana_conn 100;",
      "client_max_body_size 2m;",
      "user www-data;",
      "pid /run/nginx.pid;",
      "access_log /var/log/nginx/access.log supafana_json;",
      '"path":"$uri"',
    ]) {
      expect(config, fragment).toContain(fragment);
    }
    const logFormat = config.slice(config.indexOf("log_format"), config.indexOf("access_log"));
    expect(logFormat).not.toMatch(/\$request_uri|\$args|\$query_string|\$request"/);
    expect(config).not.toContain("hostnames;");
    expect(config).not.toMatch(/\d{4}-\d{2}-\d{2}T/);
  });

  it("when 5,000 routes are rendered, then every one is in the map (timing is in npm run bench)", () => {
    const routes = manyRoutes(5000);
    const config = renderGatewayConfig(routes, PROD_OPTS);
    for (const r of routes) expect(config).toContain(`${r.ref}.`);
  });

  it("gatewayConfigHash is the sha256 hex of the text", () => {
    expect(gatewayConfigHash("")).toBe(
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
  });
});

describe("renderGatewayConfig input validation", () => {
  const ok = { ref: "abcdefghijklmnopqrst", privateIp: "10.1.2.3" };

  it.each([
    ["too short", "abc"],
    ["upper case", "ABCDEFGHIJKLMNOPQRST"],
    ["digits", "abcdefghijklmnopqrs1"],
    ["injection", "abcdefghijklmnopqrst 1.2.3.4:80; }"],
    ["21 letters", "abcdefghijklmnopqrstu"],
  ])("when the ref is %s, then it throws", (_name, ref) => {
    expect(() => renderGatewayConfig([{ ...ok, ref }], PROD_OPTS)).toThrow(GatewayConfigError);
  });

  it.each([
    ["out of range", "10.0.0.256"],
    ["leading zero", "10.0.0.04"],
    ["three parts", "10.0.1"],
    ["hostname", "grafana.internal"],
    ["IPv6", "::1"],
    ["with port", "10.0.0.1:3000"],
    ["injection", "10.0.0.1; return 200"],
    ["trailing newline", "10.0.0.1\n"],
  ])("when the IP is %s, then it throws", (_name, privateIp) => {
    expect(() => renderGatewayConfig([{ ...ok, privateIp }], PROD_OPTS)).toThrow(
      GatewayConfigError,
    );
  });

  it.each([0, 65536, 1.5, Number.NaN])("when the port is %s, then it throws", (port) => {
    expect(() => renderGatewayConfig([{ ...ok, port }], PROD_OPTS)).toThrow(GatewayConfigError);
  });

  it.each([
    ["a bad domain", { domain: "grafana_example.com" }],
    ["a one-label domain", { domain: "localhost" }],
    ["a domain with a space", { domain: "grafana.example.com; }" }],
    ["a relative cert path", { certificatePath: "cert.pem" }],
    ["a cert path with a quote", { certificatePath: "/etc/nginx/'x.pem" }],
    ["a cert path with ..", { certificateKeyPath: "/etc/nginx/../x.key" }],
    ["a bad body size", { clientMaxBodySize: "10 m" }],
    ["a zero rate", { rateLimitPerSecond: 0 }],
    ["a negative burst", { burst: -1 }],
    ["a bad user", { user: "www-data; daemon off" }],
    ["the same http and https port", { listen: { http: 8443, https: 8443 } }],
  ])("when the options have %s, then it throws", (_name, extra) => {
    expect(() => renderGatewayConfig([ok], { ...PROD_OPTS, ...extra })).toThrow(GatewayConfigError);
  });
});

describe("renderGatewayConfig with the Grafana sign-in", () => {
  const routes = [
    { ref: refOf(11), privateIp: "10.0.0.11" },
    { ref: refOf(12), privateIp: "10.0.0.12" },
  ];

  it("when the sign-in is on, then nginx -t accepts the config with Debian's njs module and the script", () => {
    const result = nginxTest((sb) => {
      const script = renderSigninScript({
        keysPath: `${sb.dir}/keys.json`,
        usedTicketsDir: `${sb.dir}/used`,
        appUrl: "https://app.example.com",
      });
      const scriptPath = `${sb.dir}/${signinScriptFileName(script)}`;
      writeFileSync(scriptPath, script);
      return renderGatewayConfig(
        routes,
        optionsFor(sb, { signin: { scriptPath, njsModulePath: NJS_MODULE_PATH } }),
      );
    });
    expect(result.output).toMatch(/syntax is ok/);
    expect(result.ok).toBe(true);
  });

  it("when a revocation names routed and unrouted refs, then only routed hosts get a not-before", () => {
    const config = renderGatewayConfig(routes, {
      ...PROD_OPTS,
      signin: {
        scriptPath: "/etc/nginx/supafana/signin-0123456789abcdef.js",
        notBefore: new Map([
          [refOf(12), 1_800_000_000],
          [refOf(99), 1_800_000_001],
        ]),
      },
    });
    expect(config).toContain(`load_module ${NJS_MODULE_PATH};`);
    expect(config).toContain(
      "js_import supafana_signin from /etc/nginx/supafana/signin-0123456789abcdef.js;",
    );
    const map = /map \$host \$supafana_not_before \{\n([\s\S]*?)\n\s*\}/.exec(config)?.[1] ?? "";
    expect(
      map
        .trim()
        .split("\n")
        .map((l) => l.trim()),
    ).toEqual(["default 0;", `${refOf(12)}.${DOMAIN} 1800000000;`]);
    // The identity headers are always set by the gateway (replacing any client-sent value).
    for (const h of ["USER", "EMAIL", "NAME", "ROLE"]) {
      expect(config).toMatch(new RegExp(`proxy_set_header X-WEBAUTH-${h} \\$supafana_`));
    }
  });

  it("when the sign-in is off, then no njs appears", () => {
    const config = renderGatewayConfig(routes, PROD_OPTS);
    expect(config).not.toMatch(/js_|load_module|X-WEBAUTH/);
  });

  it.each([
    ["a relative script path", { scriptPath: "signin.js" }],
    ["a script path with a quote", { scriptPath: "/etc/nginx/'s.js" }],
    ["a module path with ..", { scriptPath: "/etc/s.js", njsModulePath: "/usr/../x.so" }],
    [
      "a fractional revocation time",
      { scriptPath: "/etc/s.js", notBefore: new Map([[refOf(11), 1.5]]) },
    ],
  ])("when the sign-in options have %s, then it throws", (_name, signin) => {
    expect(() => renderGatewayConfig(routes, { ...PROD_OPTS, signin })).toThrow(GatewayConfigError);
  });
});
