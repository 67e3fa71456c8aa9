/**
 * A whole local platform for one test file: the shared Azurite and Service Bus emulator from the
 * global setup, in-process simulators, and tables under a random prefix.
 */
import { inject } from "vitest";

import { startLocalApp, type LocalApp } from "../../local/app-host.js";
import { LOCAL } from "../../local/defaults.js";
import type { FunctionHostOptions } from "../../local/function-host.js";
import {
  randomTablePrefix,
  startPlatform,
  type Platform,
  type PlatformOptions,
} from "../../local/platform.js";

/**
 * `ownServiceBus`: the platform starts a Service Bus emulator of its own. A file whose queue
 * consumers run needs one: sessions are keyed by project ref, and consumers of another file on
 * the shared emulator would take its messages.
 */
export async function startTestPlatform(
  opts: PlatformOptions & { ownServiceBus?: boolean } = {},
): Promise<Platform> {
  const { ownServiceBus, ...rest } = opts;
  return startPlatform({
    storageConnection: inject("storageConnection"),
    ...(ownServiceBus ? {} : { serviceBusConnection: inject("serviceBusConnection") }),
    tablePrefix: randomTablePrefix(),
    deploymentDelayMs: 50,
    ...rest,
  });
}

/** A random Supabase-style project ref (20 lower-case letters). */
export function randomRef(): string {
  let out = "";
  for (let i = 0; i < 20; i++) out += String.fromCharCode(97 + Math.floor(Math.random() * 26));
  return out;
}

export const randomSlug = (prefix = "org") =>
  `${prefix}-${Math.random().toString(36).slice(2, 10)}`;

/**
 * The shipped bundle (`dist/`) served for one test file through the worker contract, with the
 * local keys; queues and timers off unless asked for.
 */
export function startTestApp(
  platform: Platform,
  opts: Partial<FunctionHostOptions> = {},
): Promise<LocalApp> {
  return startLocalApp(platform, {
    port: 0,
    adminKey: LOCAL.adminKey,
    functionKey: LOCAL.functionKey,
    runQueues: false,
    runTimers: false,
    ...opts,
  });
}
