/**
 * The whole sandbox flow in Chromium through the local host, as a person clicks it: connect →
 * identify with the e-mailed code → provision → watch it reach Running → open Grafana through a
 * one-time sign-in link → pay in the simulated Stripe Checkout → see the paid plan → delete →
 * sign out.
 * Every screen is screenshotted and checked with axe-core; the page must never trip its CSP.
 */
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  seriousViolations,
  capture,
  openSession,
  tabTo,
  type WebHost,
  startWebAndBrowser,
} from "./harness.js";

describe("web app: the sandbox flow in Chromium", () => {
  let web: WebHost;
  let browser: Browser;
  let close = () => Promise.resolve();

  beforeAll(async () => {
    ({ web, browser, close } = await startWebAndBrowser());
  });
  afterAll(() => close());

  it("when a person connects, identifies, provisions, opens Grafana signed in, pays, deletes and signs out, then every screen shows it", async () => {
    const { page, context, cspViolations } = await openSession(browser, web);
    const axe: Record<string, unknown[]> = {};

    // Connect.
    await page.goto("/");
    await expect
      .poll(() => page.getByRole("heading", { level: 1 }).textContent())
      .toBe("Grafana for every Supabase project");
    axe.connect = await capture(page, "01-connect");
    await page.getByRole("link", { name: "Connect Supabase organization" }).click();

    // Identify yourself: back from OAuth with a session but no verified member.
    await page.getByRole("heading", { name: "Identify yourself" }).waitFor();
    expect(new URL(page.url()).pathname).toBe("/identify");
    await page.getByRole("button", { name: "That's me: grace" }).waitFor();
    axe.identify = await capture(page, "02-identify");
    await page.getByRole("button", { name: "That's me: ada" }).click();
    await page.getByText("We sent a 6-digit code to a***@demo.example").waitFor();
    await expect.poll(() => page.getByText(/You can ask for a new code in 0:5\d/).count()).toBe(1);
    const mail = web.platform.loops!.sent.at(-1)!;
    const code = String(mail.dataVariables.verificationCode);
    await page.getByLabel("6-digit code").fill(code);
    axe.code = await capture(page, "03-code");
    await page.keyboard.press("Enter");

    // Projects: every project of the org with its Supabase status and region.
    await page.getByRole("heading", { name: "Projects", level: 1 }).waitFor();
    const cards = page.getByRole("list", { name: "Projects" }).getByRole("listitem");
    await expect.poll(() => cards.count()).toBe(5);
    const card = cards.filter({ has: page.getByRole("heading", { name: "Production API" }) });
    await expect.poll(() => card.getByText("Supabase: Active · us-east-1").count()).toBe(1);
    await expect
      .poll(() =>
        cards.filter({ hasText: "Legacy (paused)" }).getByText("Supabase: Paused").count(),
      )
      .toBe(1);
    // A paused project cannot be provisioned: its button is disabled and says why.
    const pausedButton = page.getByRole("button", {
      name: "Provision Grafana for Legacy (paused)",
    });
    expect(await pausedButton.isDisabled()).toBe(true);
    expect(await pausedButton.getAttribute("aria-describedby")).toBeTruthy();
    await cards
      .filter({ hasText: "Legacy (paused)" })
      .getByText("Paused in Supabase: restore the project there first.")
      .waitFor();
    await page.getByRole("banner").getByText("ada").waitFor();
    axe.projects = await capture(page, "04-projects");

    // Provision by keyboard, and watch the steps until Running.
    await tabTo(page, /^Provision Grafana for Production API$/);
    await page.keyboard.press("Enter");
    await card.getByRole("list", { name: "Provisioning progress" }).waitFor();
    axe.provisioning = await capture(page, "05-provisioning");
    await card.getByText(/^Grafana: Running/).waitFor({ timeout: 60_000 });
    await expect
      .poll(() => card.getByText(/Trial \(\d+ days?( \d+ hours?)? left\)/).count())
      .toBe(1);
    expect(await card.getByRole("list", { name: "Provisioning progress" }).count()).toBe(0);
    axe.running = await capture(page, "05-running");

    // Open Grafana: a one-time sign-in link for this member, opened in a new tab and answered
    // by the sandbox Grafana page. No shared password exists to show.
    const open = card.getByRole("button", { name: /Open Grafana/ });
    const [grafanaTab] = await Promise.all([context.waitForEvent("page"), open.click()]);
    await grafanaTab.waitForURL(/\/_supafana\/session\?ticket=/);
    const opened = new URL(grafanaTab.url());
    expect(opened.origin).toBe(
      `https://qzdemoprodapiabcdefg.${web.platform.config.GRAFANA_DOMAIN}`,
    );
    await grafanaTab.getByRole("heading", { name: "Grafana would be here" }).waitFor();
    await grafanaTab.screenshot({ path: "test-output/browser/06-grafana.png" });
    await grafanaTab.close();
    expect(await card.getByText(/password/i).count()).toBe(0);

    // Billing: subscribe in the simulated Stripe Checkout, come back to the paid plan.
    await page
      .getByRole("navigation", { name: "Main" })
      .getByRole("link", { name: "Billing" })
      .click();
    await page.getByRole("heading", { name: "Billing", level: 1 }).waitFor();
    await page.getByText("No subscription: each project can run one free trial").waitFor();
    await page.getByText("0 paid · 1 on trial").waitFor();
    axe.billing = await capture(page, "08-billing");
    await page.getByRole("button", { name: "Subscribe with Stripe Checkout" }).click();
    await page.waitForURL((u) => u.origin !== web.base);
    await page.getByRole("button", { name: "Pay" }).click();
    await page.waitForURL(`${web.base}/billing?checkout=success**`);
    await page.getByText("Payment received: your subscription is active.").waitFor();
    await page.getByText("Subscribed", { exact: true }).waitFor();
    await page.getByRole("button", { name: "Open the Stripe customer portal" }).waitFor();
    axe.paid = await capture(page, "09-billing-paid");

    // Delete, with confirmation.
    await page
      .getByRole("navigation", { name: "Main" })
      .getByRole("link", { name: "Projects" })
      .click();
    await card.getByRole("button", { name: /^Delete/ }).click();
    const dialog = page.getByRole("dialog", { name: "Delete the Grafana of Production API?" });
    await dialog.waitFor();
    axe.confirm = await capture(page, "10-confirm-delete");
    await dialog.getByRole("button", { name: "Delete Grafana" }).click();
    await card.getByText("Grafana deleted.").waitFor({ timeout: 60_000 });
    expect(
      web.platform
        .arm!.resources()
        .filter((r) => r.tags["supafana-ref"] === "qzdemoprodapiabcdefg"),
    ).toEqual([]);

    // Sign out: back to Connect, and the session is gone server-side.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByText("You have signed out.").waitFor();
    expect((await page.request.get("/api/me")).status()).toBe(401);
    axe.signedOut = await capture(page, "11-signed-out");

    expect(cspViolations).toEqual([]);
    for (const [screen, violations] of Object.entries(axe)) expect(violations, screen).toEqual([]);
  }, 150_000);

  it("when the screen is 360 px wide and only the keyboard is used, then a member identifies and the projects list fits without sideways scrolling", async () => {
    const { page } = await openSession(browser, web, { width: 360, height: 740 });
    await page.goto("/projects");
    await tabTo(page, /^Connect Supabase organization$/);
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Projects", level: 1 }).waitFor();
    await page.getByRole("heading", { name: "Staging Web" }).waitFor();
    const overflow: number = await page.evaluate(
      "document.documentElement.scrollWidth - document.documentElement.clientWidth",
    );
    expect(overflow).toBeLessThanOrEqual(0);
    expect(await capture(page, "12-projects-360")).toEqual([]);

    // Identify with the keyboard alone: the code field takes the focus once the code is sent.
    await tabTo(page, /^identify yourself$/);
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Identify yourself" }).waitFor();
    await tabTo(page, /^That's me: grace$/);
    await page.keyboard.press("Enter");
    await page.getByText("We sent a 6-digit code to g***@demo.example").waitFor();
    const code = String(web.platform.loops!.sent.at(-1)!.dataVariables.verificationCode);
    await page.keyboard.type(code);
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Projects", level: 1 }).waitFor();
    await page.getByRole("banner").getByText("grace").waitFor();
    expect(await capture(page, "13-identified-360")).toEqual([]);
  }, 60_000);

  it("when a page has an unlabelled image and button, then the axe check reports them (the check can fail)", async () => {
    const { page } = await openSession(browser, web);
    await page.setContent(
      '<!doctype html><html lang="en"><title>t</title><main><h1>t</h1><img src="data:,"><button></button></main></html>',
    );
    const ids = (await seriousViolations(page)).map((v) => v.id).sort();
    expect(ids).toEqual(["button-name", "image-alt"]);
  });
});
