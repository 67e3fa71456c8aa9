/**
 * A whole local platform for one test file: the shared Azurite and Service Bus emulator from the
 * global setup, in-process simulators, and tables under a random prefix.
 */
import { inject } from "vitest";

import {
  randomTablePrefix,
  startPlatform,
  type Platform,
  type PlatformOptions,
} from "../../local/platform.js";

export async function startTestPlatform(opts: PlatformOptions = {}): Promise<Platform> {
  return startPlatform({
    storageConnection: inject("storageConnection"),
    serviceBusConnection: inject("serviceBusConnection"),
    tablePrefix: randomTablePrefix(),
    deploymentDelayMs: 50,
    ...opts,
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
