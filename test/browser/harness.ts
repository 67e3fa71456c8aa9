/**
 * Browser tests of the web app: the local host (function host + the built app + the sandbox
 * Grafana pages) on free ports, driven by Debian's Chromium through playwright-core (no browser
 * download). Screenshots go to test-output/browser/; every screen gets an axe-core check.
 */
import { accessSync, constants, mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

import { LOCAL } from "../../local/defaults.js";
import { startLocalApp, type LocalApp } from "../../local/app-host.js";
import type { FunctionHost } from "../../local/function-host.js";
import type { Platform, PlatformOptions } from "../../local/platform.js";
import { freePort } from "../../local/ports.js";
import { startSandboxGrafana, type SandboxGrafana } from "../../local/sandbox-grafana.js";
import { startServiceBusEmulator } from "../../local/service-bus/index.js";
import { createWebStatic, firstOf } from "../../local/web-static.js";
import { startTestPlatform } from "../helpers/platform.js";

export const OUTPUT_DIR = join("test-output", "browser");

export function chromiumPath(): string {
  const path = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(`${path} not found; run scripts/ensure-system-packages.sh (as root) first`);
  }
  return path;
}

export interface WebHost {
  base: string;
  platform: Platform;
  host: FunctionHost;
  grafana: SandboxGrafana;
  close(): Promise<void>;
}

/**
 * The local host as `npm start` runs it, on a free port, with the built web app. It has a Service
 * Bus emulator of its own: the demo org's project refs are the queue sessions, and another test
 * file's consumers on a shared emulator would take its messages.
 */
export async function startWebHost(opts: PlatformOptions = {}): Promise<WebHost> {
  const bus = await startServiceBusEmulator({ port: 0 });
  // A free port can be taken by another process before we listen on it: try a few.
  for (let attempt = 1; ; attempt++) {
    try {
      const web = await startWebHostOnce({ serviceBusConnection: bus.connectionString, ...opts });
      return {
        ...web,
        close: async () => {
          await web.close();
          await bus.close();
        },
      };
    } catch (err) {
      if (attempt >= 3 || (err as { code?: string }).code !== "EADDRINUSE") {
        await bus.close();
        throw err;
      }
    }
  }
}

async function startWebHostOnce(opts: PlatformOptions): Promise<WebHost> {
  const port = await freePort();
  const base = `http://localhost:${port}`;
  const platform = await startTestPlatform({
    publicBaseUrl: base,
    deploymentDelayMs: 200,
    stripeWebhookUrl: `${base}/api/webhooks/stripe`,
    ...opts,
  });
  let local: LocalApp;
  try {
    local = await startLocalApp(platform, {
      port,
      adminKey: LOCAL.adminKey,
      functionKey: LOCAL.functionKey,
      extraRoutes: firstOf(createWebStatic()),
    });
  } catch (err) {
    await platform.close();
    throw err;
  }
  const gateway = platform.gateway;
  const grafana = await startSandboxGrafana({
    domain: platform.config.GRAFANA_DOMAIN,
    isRouted: (h) => gateway?.routes().has(h) ?? false,
    port: 0,
  });
  return {
    base,
    platform,
    host: local.host,
    grafana,
    close: async () => {
      await grafana.close();
      await local.close();
      await platform.close();
    },
  };
}

/** Debian's Chromium as root, headless and offline-friendly (no background networking). */
export function launchHeadlessChromium(extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    chromiumSandbox: false,
    args: [
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      ...extraArgs,
    ],
  });
}

/** Chromium for the web host: instance URLs resolve to the sandbox Grafana. */
export function launchChromium(web: WebHost): Promise<Browser> {
  return launchHeadlessChromium([
    `--host-resolver-rules=MAP *.${web.platform.config.GRAFANA_DOMAIN} 127.0.0.1:${web.grafana.port}`,
  ]);
}

/**
 * A web host and Chromium for one describe block, and one `close` for both (also when Chromium
 * failed to start after the host did).
 */
export async function startWebAndBrowser(
  opts: PlatformOptions = {},
): Promise<{ web: WebHost; browser: Browser; close: () => Promise<void> }> {
  const web = await startWebHost(opts);
  let browser: Browser;
  try {
    browser = await launchChromium(web);
  } catch (err) {
    await web.close();
    throw err;
  }
  return {
    web,
    browser,
    close: async () => {
      await browser.close();
      await web.close();
    },
  };
}

export interface Session {
  context: BrowserContext;
  page: Page;
  /** Console messages about the Content-Security-Policy (there must be none). */
  cspViolations: string[];
  /** Every request to the app's API, in order. */
  apiRequests: Array<{ method: string; path: string; at: number }>;
}

export async function openSession(
  browser: Browser,
  web: WebHost,
  viewport = { width: 1280, height: 800 },
): Promise<Session> {
  const context = await browser.newContext({
    viewport,
    ignoreHTTPSErrors: true,
    baseURL: web.base,
  });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: web.base });
  const page = await context.newPage();
  const cspViolations: string[] = [];
  const apiRequests: Session["apiRequests"] = [];
  context.on("console", (m) => {
    if (/Content.Security.Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  context.on("request", (r) => {
    const url = new URL(r.url());
    if (url.origin === web.base && url.pathname.startsWith("/api/"))
      apiRequests.push({ method: r.method(), path: url.pathname, at: Date.now() });
  });
  return { context, page, cspViolations, apiRequests };
}

const axeSource = readFileSync(
  createRequire(import.meta.url).resolve("axe-core/axe.min.js"),
  "utf8",
);

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: number;
}

/**
 * Runs axe-core on the page (injected through the DevTools protocol, which the page's CSP does
 * not apply to) and returns the serious and critical violations.
 */
export async function seriousViolations(page: Page): Promise<AxeViolation[]> {
  await page.evaluate(axeSource);
  // A string, so it runs in the page (whose DOM types the Node-side program does not load).
  const result: AxeViolation[] = await page.evaluate(`
    axe.run(document).then((r) =>
      r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length })),
    )`);
  return result.filter((v) => v.impact === "serious" || v.impact === "critical");
}

/** Screenshot into test-output/browser/<name>.png and the axe check; returns the violations. */
export async function capture(page: Page, name: string): Promise<AxeViolation[]> {
  mkdirSync(OUTPUT_DIR, { recursive: true });
  await page.screenshot({ path: join(OUTPUT_DIR, `${name}.png`), fullPage: true });
  return seriousViolations(page);
}

/**
 * Presses Tab until the focused element has this accessible name (keyboard-only use), checks
 * that the focus is visible (an outline), and returns how many presses it took.
 */
export async function tabTo(page: Page, name: RegExp, max = 80): Promise<number> {
  for (let i = 1; i <= max; i++) {
    await page.keyboard.press("Tab");
    const focused: { name: string; outline: boolean } | undefined = await page.evaluate(`(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return undefined;
      const style = getComputedStyle(el);
      const label = el.getAttribute("aria-label") ?? el.textContent ?? "";
      return {
        name: label.replace(/\\s+/g, " ").trim(),
        outline: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0,
      };
    })()`);
    if (focused && name.test(focused.name)) {
      if (!focused.outline) throw new Error(`focus on "${focused.name}" is not visible`);
      return i;
    }
  }
  throw new Error(`Tab never reached ${String(name)}`);
}
