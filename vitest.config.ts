import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    setupFiles: ["test/setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    maxWorkers: 2,
    // The shipped bundle is loaded by Node itself, as the Functions worker loads it.
    server: { deps: { external: [/\/dist\/[^/]+\.js/, /supafana-worker\//] } },
    reporters: ["default"],
  },
});
