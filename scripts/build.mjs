/* global console, process */
// Builds the deployable app: one ESM bundle per entry in dist/ (plus lazily loaded chunks for
// SDKs that only some functions need), and an unbundled tsc build in build/ for comparison.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname, resolve as resolvePath } from "node:path";

rmSync("dist", { recursive: true, force: true });
rmSync("build", { recursive: true, force: true });

// zod re-exports every locale as a namespace; the app only ever uses English messages, so the
// bundle gets a locales module holding just that one (about 250 KiB less to load at start).
const englishOnlyZodLocales = {
  name: "zod-english-only",
  setup(b) {
    b.onResolve({ filter: /locales\/index\.js$/ }, (args) =>
      args.importer.includes(`${"node_modules"}/zod/`)
        ? {
            path: resolvePath(dirname(args.importer), "../locales/en.js"),
            namespace: "zod-locales",
          }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "zod-locales" }, (args) => ({
      contents: `export { default as en } from ${JSON.stringify(args.path)};`,
      resolveDir: dirname(args.path),
      loader: "js",
    }));
  },
};

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
  plugins: [englishOnlyZodLocales],
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
