/**
 * What a person meets when things go wrong, in Chromium through the local host: a denied
 * consent on Supabase, a member without e-mail (409), five wrong codes and the lock, the resend
 * throttle (429 with Retry-After as a countdown), a deployment that fails (Failed, then Retry), a project whose trial is used (402 → billing),
 * and a session that expires (401 → Connect, then back to the same page).
 */
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { endSession } from "../../lib/auth/session.js";
import { recordTrialStart } from "../../lib/instances/project-refs.js";
import { LOCAL } from "../../local/defaults.js";
import {
  makeDemoOrg,
  startSupabaseSimulator,
  type SupabaseSimulator,
} from "../../local/simulators/supabase.js";
import { capture, openSession, type WebHost, startWebAndBrowser } from "./harness.js";

describe("web app: error paths in Chromium", () => {
  let web: WebHost;
  let browser: Browser;
  /** What beforeAll started, closed in reverse order (also when a later start failed). */
  const started: Array<() => Promise<unknown>> = [];
  let supabase: SupabaseSimulator;

  beforeAll(async () => {
    // Supabase shows its consent screen (approve or deny) instead of approving at once.
    supabase = await startSupabaseSimulator({
      clientId: LOCAL.supabaseClientId,
      clientSecret: LOCAL.supabaseClientSecret,
      orgs: [makeDemoOrg()],
      autoApprove: false,
    });
    started.push(() => supabase.close());
    const host = await startWebAndBrowser({
      env: {
        SUPABASE_API_URL: supabase.url,
        SUPABASE_CLIENT_ID: LOCAL.supabaseClientId,
        SUPABASE_CLIENT_SECRET: LOCAL.supabaseClientSecret,
      },
    });
    ({ web, browser } = host);
    started.push(() => host.close());
  });
  afterAll(async () => {
    for (const close of started.reverse()) await close();
  });

  it("when consent is denied, a member has no e-mail, codes are wrong, resends are throttled, a deployment fails, the trial is used and the session expires, then each is said in plain words", async () => {
    const { page, cspViolations } = await openSession(browser, web);
    const axe: Record<string, unknown[]> = {};
    const heading = () => page.getByRole("heading", { level: 1 }).textContent();

    // Denied consent: back at Connect with the reason and a way to retry.
    await page.goto("/");
    await page.getByRole("link", { name: "Connect Supabase organization" }).click();
    await page.getByRole("link", { name: "Deny" }).click();
    await expect.poll(heading).toBe("Connecting did not work");
    await page.getByRole("alert").getByText("You declined access on Supabase").waitFor();
    expect(new URL(page.url()).searchParams.get("connectError")).toBe("access_denied");
    axe.denied = await capture(page, "e01-connect-denied");
    await page.getByRole("link", { name: "Try connecting again" }).click();
    await page.getByRole("link", { name: /Approve for Demo Org/ }).click();
    await page.getByRole("heading", { name: "Identify yourself" }).waitFor();

    // A member without an e-mail address cannot get a code (409).
    await page.getByRole("button", { name: "That's me: linus" }).click();
    await page
      .getByRole("alert")
      .getByText("This member has no e-mail address in Supabase")
      .waitFor();
    axe.noEmail = await capture(page, "e02-no-email");

    // Five wrong codes, then the lock.
    await page.getByRole("button", { name: "That's me: ada" }).click();
    await page.getByText("We sent a 6-digit code to a***@demo.example").waitFor();
    const real = String(web.platform.loops!.sent.at(-1)!.dataVariables.verificationCode);
    const wrong = real === "000000" ? "111111" : "000000";
    const input = page.getByLabel("6-digit code");
    for (const left of ["4 tries left.", "3 tries left.", "2 tries left.", "1 try left."]) {
      await input.fill(wrong);
      await input.press("Enter");
      await page.getByRole("alert").getByText(`That code is not right. ${left}`).waitFor();
    }
    await input.fill(wrong);
    await input.press("Enter");
    await page.getByRole("alert").getByText("No tries left: ask for a new code.").waitFor();
    await input.fill(real);
    await input.press("Enter");
    await page.getByRole("alert").getByText("Too many wrong codes; ask for a new code.").waitFor();
    expect(await input.isDisabled()).toBe(true);
    expect(await page.getByRole("button", { name: "Send a new code" }).isDisabled()).toBe(true);
    axe.locked = await capture(page, "e03-locked");

    // The resend throttle: asking again at once answers 429; Retry-After shows as a countdown.
    await page.reload();
    await page.getByRole("button", { name: "That's me: ada" }).click();
    await page.getByRole("alert").getByText("A code was sent a moment ago").waitFor();
    await page.getByText(/You can ask for a new code in 0:[0-5]\d\./).waitFor();
    axe.throttled = await capture(page, "e04-resend-throttled");

    // Another member with an e-mail can still identify at once (the throttle is per member).
    await page.reload();
    await page.getByRole("button", { name: "That's me: grace" }).click();
    await page.getByText("We sent a 6-digit code to g***@demo.example").waitFor();
    const code = String(web.platform.loops!.sent.at(-1)!.dataVariables.verificationCode);
    await page.getByLabel("6-digit code").fill(code);
    await page.getByLabel("6-digit code").press("Enter");
    await page.getByRole("heading", { name: "Projects", level: 1 }).waitFor();

    // A deployment that fails: Failed with the reason, then Retry brings it to Running.
    web.platform.arm!.failNextDeployment("grafana-qzdemoanalyticslmnop");
    const analytics = page
      .getByRole("list", { name: "Projects" })
      .getByRole("listitem")
      .filter({ has: page.getByRole("heading", { name: "Analytics" }) });
    await analytics.getByRole("button", { name: "Provision Grafana for Analytics" }).click();
    await analytics
      .getByText(/^Provisioning failed: The Azure deployment failed: SkuNotAvailable/)
      .waitFor({ timeout: 60_000 });
    axe.failed = await capture(page, "e05-provision-failed");
    await analytics.getByRole("button", { name: "Retry provisioning Analytics" }).click();
    await analytics.getByText(/^Grafana: Running/).waitFor({ timeout: 60_000 });

    // A project whose trial was used: 402 trial_used leads to billing.
    await recordTrialStart(
      web.platform.services,
      "demo-org",
      "qzdemostagingwebhijk",
      new Date(Date.now() - 3_600_000),
    );
    await page.getByRole("button", { name: "Provision Grafana for Staging Web" }).click();
    const refusal = page.getByRole("alert").filter({ hasText: "a project gets one trial only" });
    await refusal.waitFor();
    axe.refused = await capture(page, "e06-trial-used");
    await refusal.getByRole("link", { name: "Go to billing" }).click();
    await page.getByRole("heading", { name: "Billing", level: 1 }).waitFor();
    expect(new URL(page.url()).pathname).toBe("/billing");

    // The session ends on the server (as a week idle ends it): the next call answers 401, the
    // app shows Connect on the same page, and connecting again comes back to it.
    const services = web.platform.services;
    for await (const row of services.tables.client("sessions").listEntities()) {
      await endSession(services, row.partitionKey!);
    }
    await page.getByRole("button", { name: "Subscribe with Stripe Checkout" }).click();
    await page
      .getByText("Your session has ended. Connect again to continue where you were.")
      .waitFor();
    expect(new URL(page.url()).pathname).toBe("/billing");
    axe.expired = await capture(page, "e07-session-expired");
    await page.getByRole("link", { name: "Connect Supabase organization" }).click();
    await page.getByRole("link", { name: /Approve for Demo Org/ }).click();
    await page.getByRole("heading", { name: "Billing", level: 1 }).waitFor();
    expect(new URL(page.url()).pathname).toBe("/billing");

    expect(cspViolations).toEqual([]);
    for (const [screen, violations] of Object.entries(axe)) expect(violations, screen).toEqual([]);
  }, 120_000);
});
