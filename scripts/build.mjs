/* global console, process */
// Builds the deployable app: one ESM bundle per entry in dist/ (plus lazily loaded chunks for
// SDKs that only some functions need), and an unbundled tsc build in build/ for comparison.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";

rmSync("dist", { recursive: true, force: true });
rmSync("build", { recursive: true, force: true });

const result = await build({
  entryPoints: { index: "functions/index.ts" },
  outdir: "dist",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  minify: true,
  sourcemap: "linked",
  metafile: true,
  legalComments: "linked",
  // CommonJS dependencies inside an ESM bundle need a real `require`.
  banner: {
    js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
  },
  // Provided by the Functions worker at run time.
  external: ["@azure/functions-core"],
  logLevel: "warning",
});

const outputs = Object.entries(result.metafile.outputs).filter(([f]) => f.endsWith(".js"));
const total = outputs.reduce((n, [, o]) => n + o.bytes, 0);
const entry = result.metafile.outputs["dist/index.js"];
console.log(
  `dist/: ${outputs.length} files, ${(total / 1024).toFixed(0)} KiB in all; entry dist/index.js ${((entry?.bytes ?? 0) / 1024).toFixed(0)} KiB`,
);

// Unbundled build (what a plain `tsc` deployment would load), used by the benchmark.
execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], {
  stdio: "inherit",
});
