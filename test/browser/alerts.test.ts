/**
 * The Alerts screen (default alerts, the Grafana configuration state, alert recipients) and the
 * e-mail preferences, in Chromium through the local host: an org admin tunes alerts and picks
 * recipients; a non-admin sees the values read-only and switches alert e-mail for themselves;
 * refusals (invalid values, 403, 404) are said in plain words. Every screen gets the axe check.
 *
 * Everything is the real local host from the built app: the alert definitions are the catalog's,
 * "applied" is the configure push the host's queues run against the sandbox Grafana hosts (which
 * can be told to fail the next pushes), and a role change is made in the Supabase simulator.
 */
import type { Browser, BrowserContext, Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  capture,
  openSession,
  tabTo,
  type Session,
  type WebHost,
  startWebAndBrowser,
} from "./harness.js";

const PROD = "qzdemoprodapiabcdefg";
const STAGING = "qzdemostagingwebhijk";
const ANALYTICS = "qzdemoanalyticslmnop";
const ADA = "5b0f2c1e-6d1a-4f0e-9a4b-1c2d3e4f5a60";
const GRACE = "7c1e3d2f-8e2b-4a1f-8b5c-2d3e4f5a6b71";

/** An API write the page made, with the status it was answered. */
interface Write {
  method: string;
  path: string;
  body: unknown;
  status: number;
}

/** Records the page's API writes (what the UI sent, and the answer's status). */
function recordWrites(context: BrowserContext, base: string): Write[] {
  const writes: Write[] = [];
  context.on("response", (res) => {
    const req = res.request();
    const url = new URL(req.url());
    if (url.origin !== base || !url.pathname.startsWith("/api/") || req.method() === "GET") return;
    writes.push({
      method: req.method(),
      path: url.pathname,
      body: req.postData() ? req.postDataJSON() : undefined,
      status: res.status(),
    });
  });
  return writes;
}

const writesTo = (writes: Write[], path: string): Write[] => writes.filter((w) => w.path === path);

/** The demo org's member in the Supabase simulator (its role can be changed there). */
function demoMember(web: WebHost, userId: string) {
  const org = web.platform.supabase?.orgs.find((o) => o.slug === "demo-org");
  const member = org?.members.find((m) => m.user_id === userId);
  if (!member) throw new Error(`no demo member ${userId}`);
  return member;
}

/**
 * Connects the demo org again in a browser of its own. The backend caches an org's member list
 * for a minute and forgets it at a (re)connection: the next request reads the roles afresh.
 */
async function reconnect(browser: Browser, web: WebHost): Promise<void> {
  const { page, context } = await openSession(browser, web);
  await page.goto("/");
  await page.getByRole("link", { name: "Connect Supabase organization" }).click();
  await page.getByRole("heading", { name: "Identify yourself" }).waitFor();
  await context.close();
}

/** Connect the demo org and identify as `member` with the e-mailed code. */
async function signInAs(page: Page, web: WebHost, member: string): Promise<void> {
  await page.goto("/");
  await page.getByRole("link", { name: "Connect Supabase organization" }).click();
  await page.getByRole("heading", { name: "Identify yourself" }).waitFor();
  // Not identified yet: no e-mail settings in the header.
  expect(await page.getByRole("navigation", { name: "Main" }).getByRole("link").count()).toBe(2);
  await page.getByRole("button", { name: `That's me: ${member}` }).click();
  await page.getByText(/We sent a 6-digit code to/).waitFor();
  const code = String(web.platform.loops!.sent.at(-1)!.dataVariables.verificationCode);
  await page.getByLabel("6-digit code").fill(code);
  await page.getByLabel("6-digit code").press("Enter");
  await page.getByRole("heading", { name: "Projects", level: 1 }).waitFor();
  await page.getByRole("banner").getByText(member).waitFor();
}

const isFocused = (page: Page, selector: string): Promise<boolean> =>
  page.evaluate(`document.activeElement === document.querySelector(${JSON.stringify(selector)})`);

/** Whether the keyboard focus is on this element. */
const hasFocus = async (locator: Locator): Promise<boolean> =>
  (await locator.and(locator.page().locator(":focus")).count()) === 1;

const sidewaysOverflow = (page: Page): Promise<number> =>
  page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth");

describe("web app: alerts, recipients and e-mail preferences in Chromium", () => {
  let web: WebHost;
  let browser: Browser;
  let close = () => Promise.resolve();

  beforeAll(async () => {
    ({ web, browser, close } = await startWebAndBrowser());
  });
  afterAll(() => close());

  /**
   * One signed-in browser session per member for the whole file, with the API writes it makes:
   * a member identifies once (the backend sends a code at most once a minute per member).
   */
  const sessions = new Map<string, Promise<Session & { writes: Write[] }>>();
  const sessionOf = (member: string) => {
    let s = sessions.get(member);
    if (!s) {
      s = (async () => {
        const session = await openSession(browser, web);
        const writes = recordWrites(session.context, web.base);
        await signInAs(session.page, web, member);
        return { ...session, writes };
      })();
      sessions.set(member, s);
    }
    return s;
  };

  it("when an admin opens a project's alerts, tunes them, picks recipients and loses the role, then each step shows, with the Grafana configuration state", async () => {
    // grace has used the app (identified), so she can be picked as a recipient.
    await sessionOf("grace");
    const { page, cspViolations, apiRequests, writes } = await sessionOf("ada");
    const alertsPath = `/api/projects/${PROD}/grafana/alerts`;
    const recipientsPath = `/api/projects/${PROD}/grafana/recipients`;
    const alertGets = () =>
      apiRequests.filter((r) => r.method === "GET" && r.path === alertsPath).length;
    const axe: Record<string, unknown[]> = {};

    await page
      .getByRole("navigation", { name: "Main" })
      .getByRole("link", { name: "E-mail" })
      .waitFor();

    // Only a project with a Grafana has alerts: provision one, and its Alerts link shows.
    expect(await page.getByRole("link", { name: "Alerts for Staging Web" }).count()).toBe(0);
    await page.getByRole("button", { name: "Provision Grafana for Production API" }).click();
    const link = page.getByRole("link", { name: "Alerts for Production API" });
    await link.waitFor();
    axe.projects = await capture(page, "a01-projects-alerts-link");
    await link.click();

    // The screen: the catalog's alerts as a form; the new host gets its alerting configuration.
    await page.getByRole("heading", { name: "Alerts for Production API", level: 1 }).waitFor();
    expect(new URL(page.url()).pathname).toBe(`/projects/${PROD}/alerts`);
    expect(await page.title()).toBe("Alerts · Supafana");
    const status = page.getByRole("status").filter({ hasText: "Grafana configuration" });
    await status.getByText("Applied").waitFor({ timeout: 60_000 });

    const cpu = page.getByRole("group", { name: "High CPU usage" });
    const threshold = cpu.getByRole("spinbutton", { name: "CPU usage above" });
    expect(await threshold.inputValue()).toBe("85");
    expect(await threshold.getAttribute("min")).toBe("50");
    expect(await threshold.getAttribute("max")).toBe("99");
    expect(await threshold.getAttribute("step")).toBe("1");
    await cpu.getByText("Between 50% and 99%. Default 85%.").waitFor();
    await cpu.getByText("Between 1 minute and 60 minutes. Default 10 minutes.").waitFor();

    // A value out of range is refused here, with the focus on it, and nothing is sent.
    await threshold.fill("120");
    await page.getByRole("button", { name: "Save alerts" }).click();
    await cpu.getByText("“CPU usage above” must be between 50% and 99%.").waitFor();
    expect(await threshold.getAttribute("aria-invalid")).toBe("true");
    await expect.poll(() => hasFocus(threshold)).toBe(true);
    expect(writesTo(writes, alertsPath)).toEqual([]);
    axe.invalid = await capture(page, "a03-alerts-invalid");

    // A valid change, saved with the keyboard: only what changed is sent; the focus moves to the
    // outcome; the new configuration is applying. The sandbox host refuses its first push.
    web.platform.grafanaHosts!.failNextPushes(1, PROD);
    await threshold.fill("90");
    const disk = page.getByRole("group", { name: "Disk almost full" });
    await disk.getByRole("switch", { name: "Enabled" }).uncheck();
    await tabTo(page, /^Save alerts$/);
    await page.keyboard.press("Enter");
    await page.getByText("Saved. Grafana is being updated with the new alert settings.").waitFor();
    await expect
      .poll(() => writesTo(writes, alertsPath).map((w) => w.body))
      .toEqual([
        { alerts: { "high-cpu": { params: { threshold: 90 } }, "disk-full": { enabled: false } } },
      ]);
    await expect.poll(() => isFocused(page, "form .outcome")).toBe(true);
    await status.getByText("Applying…").waitFor();
    axe.applying = await capture(page, "a02-alerts-applying");
    const polls = alertGets();
    expect(await threshold.inputValue()).toBe("90");
    expect(await disk.getByRole("switch", { name: "Enabled" }).isChecked()).toBe(false);

    // The push fails: its error shows; then the retry applies it and the error goes.
    const pushError = page.getByRole("alert").filter({
      hasText: /^The last change could not be applied to Grafana: .*refused the reload/,
    });
    await pushError.waitFor({ timeout: 60_000 });
    axe.pushFailed = await capture(page, "a04-alerts-push-failed");
    await status.getByText("Applied").waitFor({ timeout: 60_000 });
    await pushError.waitFor({ state: "detached" });
    expect(alertGets()).toBeGreaterThan(polls);

    // Recipients: verified members can be ticked; linus has not signed in yet; ada asked for the
    // Grafana, so she gets its alerts.
    const recipients = page.getByRole("region", { name: "Who gets alert e-mail" });
    const linus = recipients.getByRole("checkbox", { name: /linus/ });
    expect(await linus.isDisabled()).toBe(true);
    await recipients.getByText("linus has not signed in to Supafana yet.").waitFor();
    expect(await recipients.getByRole("checkbox", { name: /ada/ }).isChecked()).toBe(true);
    const grace = recipients.getByRole("checkbox", { name: /grace/ });
    expect(await grace.isChecked()).toBe(false);
    await grace.check();
    await recipients.getByRole("button", { name: "Save recipients" }).click();
    await recipients.getByText("Saved. 2 members get alert e-mail for this project.").waitFor();
    await expect
      .poll(() => writesTo(writes, recipientsPath).map((w) => w.body))
      .toEqual([{ userIds: [ADA, GRACE] }]);
    // A new recipient list is a new configuration: applying again, until the host has it.
    await status.getByText("Applying…").waitFor();
    axe.recipients = await capture(page, "a05-recipients");
    await status.getByText("Applied").waitFor({ timeout: 60_000 });

    // ada is made a Developer in Supabase meanwhile (and the backend has read the roles again):
    // the save is refused with 403, said in plain words where the focus goes.
    const ada = demoMember(web, ADA);
    ada.role_name = "Developer";
    try {
      await reconnect(browser, web);
      await cpu.getByRole("spinbutton", { name: "For at least" }).fill("15");
      await page.getByRole("button", { name: "Save alerts" }).click();
      await page
        .getByRole("alert")
        .getByText("Only an Owner or Administrator of the organization can change alerts.")
        .waitFor();
      await expect.poll(() => isFocused(page, "form .outcome")).toBe(true);
      await expect
        .poll(() =>
          writes
            .filter((w) => w.path === alertsPath || w.path === recipientsPath)
            .map((w) => w.status),
        )
        .toEqual([202, 202, 403]);
      axe.forbidden = await capture(page, "a06-alerts-forbidden");
    } finally {
      ada.role_name = "Owner";
      await reconnect(browser, web);
    }

    // A project without a Grafana: 404, said with the way out.
    await page.goto(`/projects/${ANALYTICS}/alerts`);
    await page.getByRole("alert").getByText("This project has no Grafana instance.").waitFor();
    await page.getByRole("link", { name: "Provision one" }).waitFor();
    axe.noInstance = await capture(page, "a07-alerts-no-instance");

    expect(cspViolations).toEqual([]);
    for (const [screen, violations] of Object.entries(axe)) expect(violations, screen).toEqual([]);
  }, 180_000);

  it("when a non-admin opens alerts on a narrow screen with the keyboard, then the values are read-only, they switch alert e-mail for themselves only, and set their e-mail preferences", async () => {
    const { page, cspViolations, writes } = await sessionOf("grace");
    await page.setViewportSize({ width: 360, height: 740 });
    const recipientsPath = `/api/projects/${STAGING}/grafana/recipients`;
    const axe: Record<string, unknown[]> = {};

    await page.goto("/projects");
    await page.getByRole("button", { name: "Provision Grafana for Staging Web" }).click();
    await page.getByRole("link", { name: "Alerts for Staging Web" }).waitFor();

    // A deep link to the Alerts page of a project.
    await page.goto(`/projects/${STAGING}/alerts`);
    await page.getByRole("heading", { name: "Alerts for Staging Web", level: 1 }).waitFor();
    await page
      .getByText(
        "Only owners and administrators of Demo Org can change alerts. Your role is Developer.",
      )
      .waitFor();
    const cpu = page
      .getByRole("listitem")
      .filter({ has: page.getByRole("heading", { name: /High CPU usage/ }) });
    await cpu.getByText("On", { exact: true }).waitFor();
    await cpu.getByText("85%").waitFor();
    await cpu.getByText("10 minutes").waitFor();
    expect(await page.getByRole("spinbutton").count()).toBe(0);
    expect(await page.getByRole("button", { name: "Save alerts" }).count()).toBe(0);
    expect(await sidewaysOverflow(page)).toBeLessThanOrEqual(0);
    axe.readOnly = await capture(page, "a08-alerts-read-only-360");

    // grace asked for this Grafana, so she gets its alerts. Switched off with the keyboard; the
    // focus stays on the switch.
    const mine = page.getByRole("switch", { name: "Receive alerts for this project" });
    await expect.poll(() => mine.isChecked()).toBe(true);
    await mine.focus();
    await page.keyboard.press("Space");
    await page.getByText("You no longer get alert e-mail for Staging Web.").waitFor();
    expect(await mine.isChecked()).toBe(false);
    expect(await hasFocus(mine)).toBe(true);
    await expect
      .poll(() => writesTo(writes, recipientsPath).map((w) => w.body))
      .toEqual([{ userIds: [] }]);
    const members = page.getByRole("list", { name: "Members" });
    await members
      .getByRole("listitem")
      .filter({ hasText: "linus" })
      .getByText("linus has not signed in to Supafana yet.")
      .waitFor();

    // ada (an Owner) adds herself meanwhile, on her own screen. grace's switch would now send a
    // list without ada, which only an admin may do: refused with 403, and the list shows what it
    // is now.
    const { page: adaPage } = await sessionOf("ada");
    await adaPage.goto(`/projects/${STAGING}/alerts`);
    const adaRecipients = adaPage.getByRole("region", { name: "Who gets alert e-mail" });
    await adaRecipients.getByRole("checkbox", { name: /ada/ }).check();
    await adaRecipients.getByRole("button", { name: "Save recipients" }).click();
    await adaRecipients.getByText("Saved. 1 member gets alert e-mail for this project.").waitFor();

    await page.keyboard.press("Space");
    await page
      .getByRole("alert")
      .getByText("You can add or remove only yourself; ask an Owner or Administrator.")
      .waitFor();
    await members
      .getByRole("listitem")
      .filter({ hasText: "ada" })
      .getByText("Gets alert e-mail")
      .waitFor();
    expect(await mine.isChecked()).toBe(false);
    axe.selfRefused = await capture(page, "a09-recipient-self-refused-360");
    await page.keyboard.press("Space");
    await page.getByText("You now get alert e-mail for Staging Web.").waitFor();
    expect(await mine.isChecked()).toBe(true);
    await expect
      .poll(() => writesTo(writes, recipientsPath).map((w) => [w.body, w.status]))
      .toEqual([
        [{ userIds: [] }, 202],
        [{ userIds: [GRACE] }, 403],
        [{ userIds: [ADA, GRACE] }, 202],
      ]);

    // E-mail preferences, from the header.
    await page
      .getByRole("navigation", { name: "Main" })
      .getByRole("link", { name: "E-mail" })
      .click();
    await page.getByRole("heading", { name: "E-mail notifications", level: 1 }).waitFor();
    const switches = page.getByRole("list", { name: "E-mails" }).getByRole("switch");
    await expect.poll(() => switches.count()).toBe(4);
    for (const s of await switches.all()) expect(await s.isChecked()).toBe(true);
    await page
      .getByText("The 6-digit verification code is always sent: it is how you identify yourself.")
      .waitFor();
    const trial = page.getByRole("switch", { name: "Trial is ending" });
    await trial.focus();
    await page.keyboard.press("Space");
    await page.getByText("Saved: “Trial is ending” e-mail is off.").waitFor();
    await expect
      .poll(() => writesTo(writes, "/api/me/notifications").map((w) => w.body))
      .toEqual([{ preferences: { trialEnding: false } }]);
    expect(await sidewaysOverflow(page)).toBeLessThanOrEqual(0);
    axe.preferences = await capture(page, "a10-email-preferences-360");
    await page.reload();
    await page.getByRole("heading", { name: "E-mail notifications", level: 1 }).waitFor();
    await expect.poll(() => trial.isChecked()).toBe(false);
    expect(await page.getByRole("switch", { name: "Grafana is ready" }).isChecked()).toBe(true);

    expect(cspViolations).toEqual([]);
    for (const [screen, violations] of Object.entries(axe)) expect(violations, screen).toEqual([]);
  }, 120_000);
});
