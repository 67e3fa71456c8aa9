/** The local host's serving of the built web app: caching, fallback, compression, CSP, safety. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, get, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brotliDecompressSync, gunzipSync } from "node:zlib";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  CONTENT_SECURITY_POLICY,
  createWebStatic,
  isHashedAsset,
} from "../../../local/web-static.js";

const INDEX =
  "<!doctype html><html><head><script type=module src=/assets/index-AbCd1234.js></script></head><body><div id=root></div></body></html>";
const SCRIPT = `console.log(${JSON.stringify("x".repeat(4000))});`;

async function serve(root: string): Promise<{ url: string; server: Server }> {
  const handler = createWebStatic({ root });
  const server = createServer((req, res) => {
    void handler(req, res).then((handled) => {
      if (!handled) res.writeHead(418).end("not the app");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe("web app static serving", () => {
  let dir: string;
  let app: { url: string; server: Server };
  let empty: { url: string; server: Server };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "web-static-"));
    mkdirSync(join(dir, "dist", "assets"), { recursive: true });
    writeFileSync(join(dir, "dist", "index.html"), INDEX);
    writeFileSync(join(dir, "dist", "assets", "index-AbCd1234.js"), SCRIPT);
    writeFileSync(join(dir, "dist", "favicon.svg"), "<svg xmlns='http://www.w3.org/2000/svg'/>");
    writeFileSync(join(dir, "secret.txt"), "outside the build");
    app = await serve(join(dir, "dist"));
    empty = await serve(join(dir, "missing"));
  });
  afterAll(async () => {
    await new Promise((r) => app.server.close(r));
    await new Promise((r) => empty.server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it("when a page of the app is asked for, then index.html answers, never cached, with the CSP", async () => {
    for (const path of [
      "/",
      "/projects",
      "/billing?checkout=success&session_id=cs_1",
      "/identify/",
    ]) {
      const res = await fetch(app.url + path);
      expect(res.status, path).toBe(200);
      expect(await res.text()).toBe(INDEX);
      expect(res.headers.get("cache-control")).toBe("no-store");
      expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
      expect(res.headers.get("content-security-policy")).toBe(CONTENT_SECURITY_POLICY);
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    }
    expect(CONTENT_SECURITY_POLICY).toContain("script-src 'self'");
    expect(CONTENT_SECURITY_POLICY).not.toContain("unsafe-inline");
  });

  it("when a hashed asset is asked for, then it is cached for a year, compressed as accepted", async () => {
    const path = "/assets/index-AbCd1234.js";
    const gz = await fetch(app.url + path, { headers: { "accept-encoding": "gzip" } });
    expect(gz.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(gz.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(gz.headers.get("vary")).toBe("accept-encoding");
    // fetch decodes for us; check the raw bytes through node:http instead.
    const raw = async (encoding: string) =>
      new Promise<{ enc: string | undefined; body: Buffer }>((resolve, reject) => {
        const req = get(
          `${app.url}${path}`,
          { headers: { "accept-encoding": encoding } },
          (res: IncomingMessage) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () =>
              resolve({ enc: res.headers["content-encoding"], body: Buffer.concat(chunks) }),
            );
          },
        );
        req.on("error", reject);
      });
    const g = await raw("gzip");
    expect(g.enc).toBe("gzip");
    expect(gunzipSync(g.body).toString()).toBe(SCRIPT);
    const b = await raw("br, gzip");
    expect(b.enc).toBe("br");
    expect(brotliDecompressSync(b.body).toString()).toBe(SCRIPT);
    const plain = await raw("identity");
    expect(plain.enc).toBeUndefined();
    expect(plain.body.toString()).toBe(SCRIPT);

    const icon = await fetch(app.url + "/favicon.svg");
    expect(icon.headers.get("cache-control")).toBe("public, max-age=3600");
    expect(isHashedAsset("/assets/index-AbCd1234.js")).toBe(true);
    expect(isHashedAsset("/favicon.svg")).toBe(false);
  });

  it("when a missing file, the API, another method or a path outside the build is asked for, then the app does not answer with a file", async () => {
    expect((await fetch(app.url + "/assets/gone-AbCd1234.js")).status).toBe(404);
    expect((await fetch(app.url + "/api/me")).status).toBe(418);
    expect((await fetch(app.url + "/admin/functions/x")).status).toBe(418);
    expect((await fetch(app.url + "/", { method: "POST" })).status).toBe(418);
    const escape = await fetch(app.url + "/%2e%2e/secret.txt");
    expect(await escape.text()).not.toContain("outside the build");
    const head = await fetch(app.url + "/projects", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
  });

  it("when the app is not built, then pages say how to build it", async () => {
    const res = await fetch(empty.url + "/projects");
    expect(res.status).toBe(503);
    expect(await res.text()).toContain("npm run build");
  });
});
