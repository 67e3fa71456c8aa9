/* global console, process */
// Builds the web app (web/) into web/dist/ with Vite: hashed, minified assets under
// web/dist/assets/ and an index.html without inline script (the Content-Security-Policy the
// host sends allows only same-origin scripts and styles).
//
//   node scripts/build-web.mjs              build
//   node scripts/build-web.mjs --if-stale   build only when a source is newer than the build
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { readFileSync } from "node:fs";

const root = "web";
const outDir = "web/dist";

function newest(dir) {
  let t = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === "dist" || entry.name === "node_modules") continue;
    const p = join(dir, entry.name);
    t = Math.max(t, entry.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

if (process.argv.includes("--if-stale")) {
  let built = 0;
  try {
    built = statSync(join(outDir, "index.html")).mtimeMs;
  } catch {
    // not built yet
  }
  if (built > newest(root)) process.exit(0);
}

// A production build whatever the caller's NODE_ENV (test runners set "test", which would give
// React's development build).
process.env.NODE_ENV = "production";
const { build } = await import("vite");
const react = (await import("@vitejs/plugin-react")).default;

const result = await build({
  root,
  configFile: false,
  mode: "production",
  logLevel: "warn",
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: true,
    assetsInlineLimit: 0,
    // The entry has no dynamic imports; a modulepreload polyfill is not needed by the
    // browsers that run ES2022.
    modulePreload: { polyfill: false },
  },
});

const outputs = (Array.isArray(result) ? result : [result]).flatMap((r) =>
  "output" in r ? r.output : [],
);
let js = 0;
let jsGzip = 0;
for (const o of outputs) {
  if (o.type === "chunk" && o.fileName.endsWith(".js")) {
    const bytes = readFileSync(join(outDir, o.fileName));
    js += bytes.length;
    jsGzip += gzipSync(bytes, { level: 9 }).length;
  }
}
console.log(
  `web/dist/: ${outputs.length} files; JavaScript ${(js / 1024).toFixed(0)} KiB, ${(jsGzip / 1024).toFixed(1)} KiB gzip`,
);
