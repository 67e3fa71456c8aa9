/**
 * Serves the built web app (web/dist) from the local host, on the same origin as `/api`:
 * files by path, the SPA fallback to index.html for app paths, immutable caching for hashed
 * assets, `no-store` for index.html, gzip/brotli when the browser accepts them, and a strict
 * Content-Security-Policy (no inline script) on every answer.
 */
import { readFile, stat } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { extname, join, normalize, resolve, sep } from "node:path";
import { brotliCompressSync, constants as zlib, gzipSync } from "node:zlib";

/** What the app needs and nothing more: its own scripts, styles, images and API. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join("; ");

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "strict-origin-when-cross-origin",
  "cross-origin-opener-policy": "same-origin",
  "permissions-policy": "camera=(), microphone=(), geolocation=()",
};

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".webp": "image/webp",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
  ".webmanifest": "application/manifest+json",
};
const COMPRESSIBLE = new Set([".html", ".js", ".mjs", ".css", ".json", ".map", ".svg", ".txt"]);

/** Paths the app does not own: the API, the host's admin API, local-only helpers. */
const NOT_OURS = /^\/(api|admin|_local)(\/|$)/;

/** Vite's hashed asset names, e.g. `/assets/index-Cs99awZ4.js`: safe to cache for a year. */
export const isHashedAsset = (path: string): boolean =>
  /^\/assets\/[^/]+-[A-Za-z0-9_-]{8,}\.[a-z0-9]+$/.test(path);

export interface WebStaticOptions {
  /** The built app; default `web/dist`. */
  root?: string;
}

interface Cached {
  mtimeMs: number;
  raw: Buffer;
  gzip?: Buffer;
  br?: Buffer;
}

function accepts(req: IncomingMessage, encoding: string): boolean {
  const header = req.headers["accept-encoding"];
  const value = Array.isArray(header) ? header.join(",") : (header ?? "");
  return value
    .split(",")
    .map((p) => p.trim().split(";"))
    .some(([name, q]) => name === encoding && q?.trim() !== "q=0");
}

const NOT_BUILT = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Supafana</title></head>
<body><main><h1>The web app is not built</h1><p>Run <code>npm run build</code>, then reload this page.
The API is served under <a href="/api/openapi.json">/api</a>.</p></main></body></html>`;

/**
 * A request handler for the local host's `extraRoutes`: answers GET/HEAD for app paths and
 * returns false for anything else (the API, other methods).
 */
export function createWebStatic(
  opts: WebStaticOptions = {},
): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  const root = resolve(opts.root ?? "web/dist");
  const cache = new Map<string, Cached>();

  async function load(file: string): Promise<Cached | undefined> {
    let info;
    try {
      info = await stat(file);
    } catch {
      return undefined;
    }
    if (!info.isFile()) return undefined;
    const hit = cache.get(file);
    if (hit?.mtimeMs === info.mtimeMs) return hit;
    const entry: Cached = { mtimeMs: info.mtimeMs, raw: await readFile(file) };
    cache.set(file, entry);
    return entry;
  }

  function send(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    file: string,
    body: Cached,
    cacheControl: string,
  ): void {
    const ext = extname(file);
    const headers: Record<string, string> = {
      ...SECURITY_HEADERS,
      "content-type": TYPES[ext] ?? "application/octet-stream",
      "cache-control": cacheControl,
    };
    let payload = body.raw;
    if (COMPRESSIBLE.has(ext) && body.raw.length > 512) {
      headers.vary = "accept-encoding";
      if (accepts(req, "br")) {
        body.br ??= brotliCompressSync(body.raw, {
          params: {
            [zlib.BROTLI_PARAM_QUALITY]: 11,
            [zlib.BROTLI_PARAM_SIZE_HINT]: body.raw.length,
          },
        });
        payload = body.br;
        headers["content-encoding"] = "br";
      } else if (accepts(req, "gzip")) {
        body.gzip ??= gzipSync(body.raw, { level: 9 });
        payload = body.gzip;
        headers["content-encoding"] = "gzip";
      }
    }
    headers["content-length"] = String(payload.length);
    res.writeHead(status, headers);
    res.end(req.method === "HEAD" ? undefined : payload);
  }

  return async (req, res) => {
    const method = req.method ?? "GET";
    if (method !== "GET" && method !== "HEAD") return false;
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? "/", "http://localhost").pathname);
    } catch {
      return false;
    }
    if (NOT_OURS.test(path) || path.includes("\0")) return false;

    // A file of the build, never outside it.
    const file = normalize(join(root, path));
    if (file !== root && !file.startsWith(root + sep)) return false;
    const found = path.endsWith("/") ? undefined : await load(file);
    if (found) {
      send(
        req,
        res,
        200,
        file,
        found,
        isHashedAsset(path)
          ? "public, max-age=31536000, immutable"
          : file.endsWith(".html")
            ? "no-store"
            : "public, max-age=3600",
      );
      return true;
    }

    // A missing file (an asset name, anything with an extension) is a 404, not the app.
    if (extname(path) !== "") {
      res.writeHead(404, { ...SECURITY_HEADERS, "content-type": "text/plain; charset=utf-8" });
      res.end(method === "HEAD" ? undefined : "Not found.");
      return true;
    }

    // Any other path is a page of the app: index.html, never cached.
    const index = await load(join(root, "index.html"));
    if (!index) {
      res.writeHead(503, {
        ...SECURITY_HEADERS,
        "content-type": "text/html; charset=utf-8",
        "cache-control": "no-store",
      });
      res.end(method === "HEAD" ? undefined : NOT_BUILT);
      return true;
    }
    send(req, res, 200, join(root, "index.html"), index, "no-store");
    return true;
  };
}

type Route = (req: IncomingMessage, res: ServerResponse, body: Buffer) => Promise<boolean>;

/** The first handler that takes the request (for the local host's `extraRoutes`). */
export function firstOf(...routes: Route[]): Route {
  return async (req, res, body) => {
    for (const route of routes) if (await route(req, res, body)) return true;
    return false;
  };
}
