/**
 * Web app figures, for the built app (web/dist) served by the local host, in Debian's Chromium:
 * - JavaScript shipped to show the projects list (gzip; and as sent, brotli);
 * - time from navigation to the projects list being visible, with a warm session and cache;
 * - API requests per minute while one Grafana operation is in flight, and while nothing is.
 */
import { existsSync } from "node:fs";
import { gzipSync } from "node:zlib";

import { launchHeadlessChromium } from "../browser/harness.js";

import { LOCAL } from "../../local/defaults.js";
import { startLocalApp } from "../../local/app-host.js";
import { startPlatform } from "../../local/platform.js";
import { freePort } from "../../local/ports.js";
import { createWebStatic, firstOf } from "../../local/web-static.js";
import { percentile } from "./load.js";

const NAVIGATIONS = 15;
const WINDOW_MS = 20_000;

export async function benchWeb(): Promise<Record<string, string | number>> {
  if (!existsSync("web/dist/index.html")) throw new Error("web/dist is not built: npm run build");
  const figures: Record<string, string | number> = {};
  const port = await freePort();
  const base = `http://localhost:${port}`;
  // Deployments take 30 s here, so one operation stays in flight through the measuring window.
  const platform = await startPlatform({
    sandbox: true,
    publicBaseUrl: base,
    deploymentDelayMs: 30_000,
  });
  const local = await startLocalApp(platform, {
    port,
    adminKey: LOCAL.adminKey,
    functionKey: LOCAL.functionKey,
    extraRoutes: firstOf(createWebStatic()),
  });
  const browser = await launchHeadlessChromium();
  try {
    const context = await browser.newContext({ baseURL: base });
    const page = await context.newPage();
    const api: number[] = [];
    const scripts = new Map<string, number>();
    page.on("request", (r) => {
      const url = new URL(r.url());
      if (url.origin === base && url.pathname.startsWith("/api/")) api.push(Date.now());
    });
    page.on("response", (r) => {
      if (r.request().resourceType() === "script") scripts.set(r.url(), 0);
    });

    // Connect (sandbox OAuth approves at once) and land on the projects list.
    await page.goto("/projects");
    await page.getByRole("link", { name: "Connect Supabase organization" }).click();
    await page.getByRole("list", { name: "Projects" }).waitFor();

    // JavaScript the page loaded, gzip-compressed as the host sends it to a gzip-only client.
    let gzip = 0;
    let sent = 0;
    for (const url of scripts.keys()) {
      const body = Buffer.from(await (await fetch(url)).arrayBuffer());
      gzip += gzipSync(body, { level: 9 }).length;
      const res = await fetch(url, { headers: { "accept-encoding": "br" } });
      sent += Number(res.headers.get("content-length") ?? 0);
      await res.arrayBuffer();
    }
    figures["JS shipped (gzip; target <= 120 KB)"] =
      `${(gzip / 1024).toFixed(1)} KiB in ${scripts.size} file(s)`;
    figures["JS shipped (brotli, as sent to Chromium)"] = `${(sent / 1024).toFixed(1)} KiB`;

    // Navigation to the list being visible, warm session and cache: navigation start (the
    // page's time origin) to the first frame with a project on screen.
    const times: number[] = [];
    for (let i = 0; i < NAVIGATIONS; i++) {
      await page.goto("/projects", { waitUntil: "commit" });
      const t = await page.waitForFunction(
        'document.querySelector("ul.projects > li") ? performance.now() : false',
        undefined,
        { polling: "raf", timeout: 10_000 },
      );
      times.push((await t.jsonValue()) as number);
    }
    times.sort((a, b) => a - b);
    figures["projects list visible after navigation, warm (target <= 1 s)"] =
      `p50 ${percentile(times, 50).toFixed(0)} ms, max ${times.at(-1)?.toFixed(0) ?? "?"} ms over ${NAVIGATIONS}`;

    // Identify (the e-mailed code), through the API with the page's session.
    const origin = { origin: base };
    const members = (await (await page.request.get("/api/org/members")).json()) as Array<{
      userId: string;
      name: string;
    }>;
    const ada = members.find((m) => m.name === "ada");
    if (!ada) throw new Error("no member ada");
    await page.request.post("/api/me/verification", {
      headers: origin,
      data: { userId: ada.userId },
    });
    const code = String(platform.loops?.sent.at(-1)?.dataVariables.verificationCode);
    const confirmed = await page.request.post("/api/me/verification/confirm", {
      headers: origin,
      data: { userId: ada.userId, code },
    });
    if (!confirmed.ok()) throw new Error(`verification failed: ${confirmed.status()}`);
    await page.goto("/projects");
    await page.getByRole("list", { name: "Projects" }).waitFor();

    const rate = async (): Promise<number> => {
      const from = Date.now();
      const before = api.length;
      await page.waitForTimeout(WINDOW_MS);
      return ((api.length - before) * 60_000) / (Date.now() - from);
    };

    figures["API requests/min, nothing in flight (target 0)"] = (await rate()).toFixed(1);

    await page.getByRole("button", { name: "Provision Grafana for Production API" }).click();
    const card = page
      .getByRole("list", { name: "Projects" })
      .getByRole("listitem")
      .filter({ has: page.getByRole("heading", { name: "Production API" }) });
    await card.getByRole("list", { name: "Provisioning progress" }).waitFor();
    figures["API requests/min, one operation in flight"] = (await rate()).toFixed(1);

    await card.getByText(/^Grafana: Running/).waitFor({ timeout: 120_000 });
    figures["API requests/min, after it ended (target 0)"] = (await rate()).toFixed(1);
  } finally {
    await browser.close();
    await local.close();
    await platform.close();
  }
  return figures;
}
