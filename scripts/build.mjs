/* global console, process */
// Builds the deployable app: one ESM bundle per entry in dist/ (plus lazily loaded chunks for
// SDKs that only some functions need), and an unbundled tsc build in build/ for comparison.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync, rmSync } from "node:fs";
import { dirname, join, resolve as resolvePath } from "node:path";
import { pathToFileURL } from "node:url";

// `--app-only`: just the deployable bundle (what `npm start` rebuilds when sources changed).
const appOnly = process.argv.includes("--app-only");

rmSync("dist", { recursive: true, force: true });
if (!appOnly) rmSync("build", { recursive: true, force: true });

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
  // Prefer each package's ESM entry: a CommonJS entry behind a lazy `import()` becomes a chunk
  // that exports only `default`, and `const { ServiceBusClient } = await import(...)` then
  // yields undefined at run time. checkLazyChunks() below refuses such a bundle.
  mainFields: ["module", "main"],
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

await checkLazyChunks(result.metafile);

/**
 * Every package the app loads lazily (`await import("pkg")`) becomes its own chunk. The build
 * fails unless each such chunk, loaded the way the worker loads it, exports every name of that
 * package the importing sources use (names the package itself exports when Node imports it).
 */
async function checkLazyChunks(metafile) {
  const sources = ["lib", "functions"].flatMap((dir) => listTs(dir));
  const problems = [];
  let checked = 0;
  for (const [file, output] of Object.entries(metafile.outputs)) {
    const entry = output.entryPoint;
    if (!entry?.includes("node_modules/")) continue;
    const pkg = packageOf(entry);
    const importers = sources.filter((f) =>
      readFileSync(f, "utf8").includes(`import(${JSON.stringify(pkg)})`),
    );
    if (importers.length === 0) continue;
    const tokens = new Set(
      importers.flatMap((f) => readFileSync(f, "utf8").match(/[A-Za-z_$][\w$]*/g) ?? []),
    );
    const native = Object.keys(await import(pkg)).filter((n) => n !== "default");
    const used = native.filter((n) => tokens.has(n));
    const chunk = await import(pathToFileURL(resolvePath(file)).href);
    const missing = used.filter((n) => !(n in chunk) || !output.exports.includes(n));
    if (missing.length) problems.push(`${file} (${pkg}) lacks ${missing.join(", ")}`);
    checked++;
  }
  if (problems.length) {
    console.error(
      `Lazily imported chunks without the named exports the app uses:\n  ${problems.join("\n  ")}`,
    );
    process.exit(1);
  }
  console.log(`lazy chunks: ${checked} checked, every named export the app uses is present`);
}

function packageOf(path) {
  const rest = path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length).split("/");
  return rest[0].startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0];
}

function listTs(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? listTs(join(dir, d.name)) : d.name.endsWith(".ts") ? [join(dir, d.name)] : [],
  );
}

// Unbundled build (what a plain `tsc` deployment would load), used by the benchmark.
if (!appOnly)
  execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], {
    stdio: "inherit",
  });
