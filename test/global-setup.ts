/**
 * Starts the shared local infrastructure once for the whole run, on free ports: Azurite (tables)
 * and the Service Bus emulator. Test files start their own in-process simulators and use random
 * table prefixes / refs / org slugs, so they never collide.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

import type { TestProject } from "vitest/node";

import { ensureBundle } from "../local/app-host.js";
import { startAzurite } from "../local/azurite.js";
import { startServiceBusEmulator } from "../local/service-bus/index.js";
import { NJS_MODULE_PATH } from "./helpers/system-tools.js";

declare module "vitest" {
  export interface ProvidedContext {
    storageConnection: string;
    serviceBusConnection: string;
  }
}

/**
 * nginx (with its njs module) and promtool validate rendered configs, Chromium runs the browser
 * tests; install them (Debian packages) when missing.
 */
function ensureSystemTools(): void {
  const missing = ["nginx", "promtool", "chromium"].filter(
    (tool) =>
      spawnSync("sh", ["-c", `command -v ${tool} || test -x /usr/sbin/${tool}`]).status !== 0,
  );
  if (!existsSync(NJS_MODULE_PATH)) missing.push("the njs module");
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(
      `${missing.join(", ")} missing: run "sudo bash scripts/ensure-system-packages.sh" once, then npm test again`,
    );
  }
  execFileSync("bash", ["scripts/ensure-system-packages.sh"], { stdio: "inherit" });
}

/** The browser tests load the built web app: build it when a source is newer than the build. */
function ensureWebBuild(): void {
  execFileSync(process.execPath, ["scripts/build-web.mjs", "--if-stale"], { stdio: "inherit" });
}

export default async function setup(project: TestProject) {
  ensureSystemTools();
  ensureWebBuild();
  // End-to-end tests run the shipped bundle: build it when a source is newer.
  ensureBundle((line) => console.log(line));
  const [azurite, bus] = await Promise.all([startAzurite(), startServiceBusEmulator({ port: 0 })]);
  project.provide("storageConnection", azurite.connectionString);
  project.provide("serviceBusConnection", bus.connectionString);
  return async () => {
    await Promise.allSettled([azurite.close(), bus.close()]);
  };
}
