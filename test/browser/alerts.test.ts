/**
 * The Alerts screen (default alerts, the Grafana configuration state, alert recipients) and the
 * e-mail preferences, in Chromium through the local host: an org admin tunes alerts and picks
 * recipients; a non-admin sees the values read-only and switches alert e-mail for themselves;
 * refusals (invalid values, 403, 404) are said in plain words. Every screen gets the axe check.
 *
 * The alerts, recipients and notification routes are answered by `ContractMock` below, which
 * follows the API contract of those routes (validation, roles, versions). Everything else (sign
 * in, identification, projects, provisioning) is the real local host.
 */
import type { Browser, BrowserContext, Locator, Page, Route } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  capture,
  launchChromium,
  openSession,
  startWebHost,
  tabTo,
  type WebHost,
} from "./harness.js";

const PROD = "qzdemoprodapiabcdefg";
const STAGING = "qzdemostagingwebhijk";
const ANALYTICS = "qzdemoanalyticslmnop";
const ADA = "5b0f2c1e-6d1a-4f0e-9a4b-1c2d3e4f5a60";
const GRACE = "7c1e3d2f-8e2b-4a1f-8b5c-2d3e4f5a6b71";
const LINUS = "9d2f4e3a-0f3c-4b2a-9c6d-3e4f5a6b7c82";

// ---------------------------------------------------------------------------------------------
// Route mocks of the alerts / recipients / notifications API. REMOVE `ContractMock` and its
// `install` calls once the backend of these routes is merged: the tests then run against the
// real routes. What only the mock decides is marked `(mock)` where it is used: the alert
// definitions, the member list, when a configuration counts as applied (`applyPending`,
// `failApply`) and the role flip (`admin`); switch those to the real platform's means then.
// ---------------------------------------------------------------------------------------------

interface MockParam {
  name: string;
  label: string;
  unit: string;
  value: number;
  default: number;
  min: number;
  max: number;
  step: number;
}
interface MockAlert {
  id: string;
  title: string;
  description: string;
  enabled: boolean;
  params: MockParam[];
}
interface MockProject {
  alerts: MockAlert[];
  desired: number;
  applied: number | null;
  lastConfigError: string | null;
  recipients: string[];
}

const param = (
  name: string,
  label: string,
  unit: string,
  value: number,
  min: number,
  max: number,
): MockParam => ({ name, label, unit, value, default: value, min, max, step: 1 });

const defaultAlerts = (): MockAlert[] => [
  {
    id: "high-cpu",
    title: "High CPU usage",
    description: "The database's CPU stays busy: queries slow down for everyone.",
    enabled: true,
    params: [
      param("threshold", "CPU usage above", "%", 80, 50, 99),
      param("for", "For at least", "minutes", 5, 1, 60),
    ],
  },
  {
    id: "disk-full",
    title: "Disk almost full",
    description: "The database disk fills up: writes stop when it is full.",
    enabled: true,
    params: [param("threshold", "Disk usage above", "%", 85, 50, 95)],
  },
  {
    id: "instance-down",
    title: "Project unreachable",
    description: "Prometheus cannot scrape the project's metrics endpoint.",
    enabled: true,
    params: [],
  },
];

const MEMBERS = [
  { userId: ADA, email: "ada@demo.example", name: "ada", role: "Owner", verified: true },
  { userId: GRACE, email: "grace@demo.example", name: "grace", role: "Developer", verified: true },
  { userId: LINUS, email: null, name: "linus", role: "Read-only", verified: false },
];

class ContractMock {
  /** The caller is an org admin (mock: flipped by the test to act a role change). */
  admin: boolean;
  readonly me: string;
  readonly projects = new Map<string, MockProject>();
  preferences: Record<string, boolean> = {
    instanceReady: true,
    trialEnding: true,
    paymentFailed: true,
    instanceDeleted: true,
  };
  /** Accepted write bodies, in order. */
  readonly alertPatches: unknown[] = [];
  readonly recipientPuts: unknown[] = [];
  readonly preferencePatches: unknown[] = [];
  /** Every answer status of a write, in order. */
  readonly writeStatuses: number[] = [];
  alertGets = 0;

  constructor(opts: { me: string; admin: boolean; instances: string[] }) {
    this.me = opts.me;
    this.admin = opts.admin;
    for (const ref of opts.instances)
      this.projects.set(ref, {
        alerts: defaultAlerts(),
        desired: 3,
        applied: 2,
        lastConfigError: null,
        recipients: [ADA],
      });
  }

  /** (mock) The host applies the desired configuration. */
  applyPending(ref: string): void {
    const p = this.projects.get(ref)!;
    p.applied = p.desired;
    p.lastConfigError = null;
  }

  /** (mock) The last push of the configuration failed. */
  failApply(ref: string, error: string): void {
    this.projects.get(ref)!.lastConfigError = error;
  }

  async install(context: BrowserContext): Promise<void> {
    await context.route(/\/api\/projects\/([^/]+)\/grafana\/(alerts|recipients)$/, (route) =>
      this.project(route),
    );
    await context.route(/\/api\/me\/notifications$/, (route) => this.notifications(route));
  }

  private static answer(route: Route, status: number, body: unknown): Promise<void> {
    return route.fulfill({ status, contentType: "application/json", body: JSON.stringify(body) });
  }
  private static fail(route: Route, status: number, code: string, message: string) {
    return ContractMock.answer(route, status, { error: { code, message } });
  }

  private alertsBody(ref: string, p: MockProject) {
    return {
      ref,
      alerts: p.alerts,
      configVersion: { desired: p.desired, applied: p.applied },
      lastConfigError: p.lastConfigError,
      canEdit: this.admin,
    };
  }

  private recipientsBody(ref: string, p: MockProject) {
    return {
      ref,
      recipients: MEMBERS.filter((m) => p.recipients.includes(m.userId)).map(
        ({ userId, email, name, role }) => ({ userId, email, name, role }),
      ),
      members: MEMBERS.map((m) => ({ ...m, recipient: p.recipients.includes(m.userId) })),
      configVersion: { desired: p.desired, applied: p.applied },
      canEditOthers: this.admin,
      me: this.me,
    };
  }

  private async project(route: Route): Promise<void> {
    const req = route.request();
    const [, ref = "", what] = /\/api\/projects\/([^/]+)\/grafana\/(alerts|recipients)$/.exec(
      new URL(req.url()).pathname,
    )!;
    const p = this.projects.get(ref);
    if (!p) return ContractMock.fail(route, 404, "not_found", "This project has no Grafana.");
    const method = req.method();
    if (what === "alerts" && method === "GET") {
      this.alertGets++;
      return ContractMock.answer(route, 200, this.alertsBody(ref, p));
    }
    if (what === "recipients" && method === "GET")
      return ContractMock.answer(route, 200, this.recipientsBody(ref, p));
    const body: unknown = req.postDataJSON();
    const status = (n: number) => {
      this.writeStatuses.push(n);
      return n;
    };
    if (what === "alerts" && method === "PATCH") {
      if (!this.admin)
        return ContractMock.fail(
          route,
          status(403),
          "forbidden",
          "Only owners and administrators of the organization can change alerts.",
        );
      const changes =
        (
          body as {
            alerts?: Record<string, { enabled?: boolean; params?: Record<string, number> }>;
          }
        ).alerts ?? {};
      for (const [id, change] of Object.entries(changes)) {
        const alert = p.alerts.find((a) => a.id === id);
        if (!alert)
          return ContractMock.fail(route, status(400), "bad_request", `Unknown alert "${id}".`);
        for (const [name, value] of Object.entries(change.params ?? {})) {
          const def = alert.params.find((q) => q.name === name);
          if (!def)
            return ContractMock.fail(
              route,
              status(400),
              "bad_request",
              `Unknown parameter "${id}.${name}".`,
            );
          if (value < def.min || value > def.max)
            return ContractMock.fail(
              route,
              status(400),
              "bad_request",
              `"${id}.${name}" must be between ${def.min} and ${def.max}.`,
            );
        }
      }
      for (const [id, change] of Object.entries(changes)) {
        const alert = p.alerts.find((a) => a.id === id)!;
        if (change.enabled !== undefined) alert.enabled = change.enabled;
        for (const [name, value] of Object.entries(change.params ?? {}))
          alert.params.find((q) => q.name === name)!.value = value;
      }
      p.desired++;
      this.alertPatches.push(body);
      return ContractMock.answer(route, status(202), this.alertsBody(ref, p));
    }
    if (what === "recipients" && method === "PUT") {
      const ids = (body as { userIds?: string[] }).userIds ?? [];
      if (ids.length > 50)
        return ContractMock.fail(route, status(400), "bad_request", "At most 50 recipients.");
      const unknown = ids.find((id) => !MEMBERS.some((m) => m.userId === id && m.verified));
      if (unknown)
        return ContractMock.fail(
          route,
          status(400),
          "bad_request",
          `${unknown} is not a verified member of the organization.`,
        );
      if (!this.admin) {
        const others = (list: string[]) =>
          list
            .filter((id) => id !== this.me)
            .sort()
            .join();
        if (others(ids) !== others(p.recipients))
          return ContractMock.fail(
            route,
            status(403),
            "forbidden",
            "You can only add or remove yourself; the recipient list has changed meanwhile.",
          );
      }
      p.recipients = [...new Set(ids)];
      p.desired++;
      this.recipientPuts.push(body);
      return ContractMock.answer(route, status(202), this.recipientsBody(ref, p));
    }
    return ContractMock.fail(route, 405, "method_not_allowed", `${method} is not allowed here.`);
  }

  private async notifications(route: Route): Promise<void> {
    const req = route.request();
    const answer = () => ({ preferences: this.preferences, always: ["verificationCode"] });
    if (req.method() === "GET") return ContractMock.answer(route, 200, answer());
    if (req.method() === "PATCH") {
      const body = req.postDataJSON() as { preferences?: Record<string, boolean> };
      const prefs = body.preferences ?? {};
      const unknown = Object.keys(prefs).find((k) => !(k in this.preferences));
      if (unknown)
        return ContractMock.fail(route, 400, "bad_request", `Unknown preference "${unknown}".`);
      this.preferences = { ...this.preferences, ...prefs };
      this.preferencePatches.push(body);
      return ContractMock.answer(route, 200, answer());
    }
    return ContractMock.fail(route, 405, "method_not_allowed", "Not allowed.");
  }
}
// ------------------------------- end of the route mocks --------------------------------------

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
  /** What beforeAll started, closed in reverse order (also when a later start failed). */
  const started: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    web = await startWebHost();
    started.push(() => web.close());
    browser = await launchChromium(web);
    started.push(() => browser.close());
  });
  afterAll(async () => {
    for (const close of started.reverse()) await close();
  });

  it("when an admin opens a project's alerts, tunes them, picks recipients and loses the role, then each step shows, with the Grafana configuration state", async () => {
    const { page, context, cspViolations } = await openSession(browser, web);
    const mock = new ContractMock({ me: ADA, admin: true, instances: [PROD] });
    await mock.install(context);
    const axe: Record<string, unknown[]> = {};

    await signInAs(page, web, "ada");
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

    // The screen: the alerts as a form, the configuration being applied, then applied.
    await page.getByRole("heading", { name: "Alerts for Production API", level: 1 }).waitFor();
    expect(new URL(page.url()).pathname).toBe(`/projects/${PROD}/alerts`);
    expect(await page.title()).toBe("Alerts · Supafana");
    const status = page.getByRole("status").filter({ hasText: "Grafana configuration" });
    await status.getByText("Applying…").waitFor();
    axe.applying = await capture(page, "a02-alerts-applying");
    const polls = mock.alertGets;
    mock.applyPending(PROD); // (mock)
    await status.getByText("Applied").waitFor();
    expect(mock.alertGets).toBeGreaterThan(polls);

    const cpu = page.getByRole("group", { name: "High CPU usage" });
    const threshold = cpu.getByRole("spinbutton", { name: "CPU usage above" });
    expect(await threshold.inputValue()).toBe("80");
    expect(await threshold.getAttribute("min")).toBe("50");
    expect(await threshold.getAttribute("max")).toBe("99");
    expect(await threshold.getAttribute("step")).toBe("1");
    await cpu.getByText("Between 50% and 99%. Default 80%.").waitFor();
    await cpu.getByText("Between 1 minute and 60 minutes. Default 5 minutes.").waitFor();

    // A value out of range is refused here, with the focus on it, and nothing is sent.
    await threshold.fill("120");
    await page.getByRole("button", { name: "Save alerts" }).click();
    await cpu.getByText("“CPU usage above” must be between 50% and 99%.").waitFor();
    expect(await threshold.getAttribute("aria-invalid")).toBe("true");
    await expect.poll(() => hasFocus(threshold)).toBe(true);
    expect(mock.alertPatches).toEqual([]);
    axe.invalid = await capture(page, "a03-alerts-invalid");

    // A valid change, saved with the keyboard: only what changed is sent; the focus moves to the
    // outcome; the new configuration is applying.
    await threshold.fill("90");
    const disk = page.getByRole("group", { name: "Disk almost full" });
    await disk.getByRole("switch", { name: "Enabled" }).uncheck();
    await tabTo(page, /^Save alerts$/);
    await page.keyboard.press("Enter");
    await page.getByText("Saved. Grafana is being updated with the new alert settings.").waitFor();
    expect(mock.alertPatches).toEqual([
      { alerts: { "high-cpu": { params: { threshold: 90 } }, "disk-full": { enabled: false } } },
    ]);
    await expect.poll(() => isFocused(page, "form .outcome")).toBe(true);
    await status.getByText("Applying…").waitFor();
    expect(await threshold.inputValue()).toBe("90");
    expect(await disk.getByRole("switch", { name: "Enabled" }).isChecked()).toBe(false);

    // The push fails: its error shows; then the host applies it and the error goes.
    mock.failApply(PROD, "Grafana did not reload its alerting configuration."); // (mock)
    const pushError = page.getByRole("alert").filter({
      hasText:
        "The last change could not be applied to Grafana: Grafana did not reload its alerting configuration.",
    });
    await pushError.waitFor();
    axe.pushFailed = await capture(page, "a04-alerts-push-failed");
    mock.applyPending(PROD); // (mock)
    await status.getByText("Applied").waitFor();
    await pushError.waitFor({ state: "detached" });

    // Recipients: verified members can be ticked; linus has not signed in yet.
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
    expect(mock.recipientPuts).toEqual([{ userIds: [ADA, GRACE] }]);
    // A new recipient list is a new configuration: applying again, until the host has it.
    await status.getByText("Applying…").waitFor();
    axe.recipients = await capture(page, "a05-recipients");
    mock.applyPending(PROD); // (mock)
    await status.getByText("Applied").waitFor();

    // The role is taken away in Supabase meanwhile (mock): the save is refused with 403, said
    // in plain words where the focus goes.
    mock.admin = false;
    await cpu.getByRole("spinbutton", { name: "For at least" }).fill("10");
    await page.getByRole("button", { name: "Save alerts" }).click();
    await page
      .getByRole("alert")
      .getByText("Only owners and administrators of the organization can change alerts.")
      .waitFor();
    await expect.poll(() => isFocused(page, "form .outcome")).toBe(true);
    expect(mock.writeStatuses).toEqual([202, 202, 403]);
    axe.forbidden = await capture(page, "a06-alerts-forbidden");

    // A project without a Grafana: 404, said with the way out.
    await page.goto(`/projects/${ANALYTICS}/alerts`);
    await page.getByRole("alert").getByText("This project has no Grafana.").waitFor();
    await page.getByRole("link", { name: "Provision one" }).waitFor();
    axe.noInstance = await capture(page, "a07-alerts-no-instance");

    expect(cspViolations).toEqual([]);
    for (const [screen, violations] of Object.entries(axe)) expect(violations, screen).toEqual([]);
  }, 120_000);

  it("when a non-admin opens alerts on a narrow screen with the keyboard, then the values are read-only, they switch alert e-mail for themselves only, and set their e-mail preferences", async () => {
    const { page, context, cspViolations } = await openSession(browser, web, {
      width: 360,
      height: 740,
    });
    const mock = new ContractMock({ me: GRACE, admin: false, instances: [STAGING] });
    await mock.install(context);
    const axe: Record<string, unknown[]> = {};

    await signInAs(page, web, "grace");

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
    await cpu.getByText("80%").waitFor();
    await cpu.getByText("5 minutes").waitFor();
    expect(await page.getByRole("spinbutton").count()).toBe(0);
    expect(await page.getByRole("button", { name: "Save alerts" }).count()).toBe(0);
    expect(await sidewaysOverflow(page)).toBeLessThanOrEqual(0);
    axe.readOnly = await capture(page, "a08-alerts-read-only-360");

    // Alert e-mail for themselves, with the keyboard; the focus stays on the switch.
    const mine = page.getByRole("switch", { name: "Receive alerts for this project" });
    expect(await mine.isChecked()).toBe(false);
    await mine.focus();
    await page.keyboard.press("Space");
    await page.getByText("You now get alert e-mail for Staging Web.").waitFor();
    expect(await mine.isChecked()).toBe(true);
    expect(await hasFocus(mine)).toBe(true);
    expect(mock.recipientPuts).toEqual([{ userIds: [ADA, GRACE] }]);
    const members = page.getByRole("list", { name: "Members" });
    await members
      .getByRole("listitem")
      .filter({ hasText: "linus" })
      .getByText("linus has not signed in to Supafana yet.")
      .waitFor();

    // An admin removed ada meanwhile (mock): switching off would put ada back, which only an
    // admin may do: refused with 403, and the list shows what it is now.
    mock.projects.get(STAGING)!.recipients = [GRACE];
    await page.keyboard.press("Space");
    await page
      .getByRole("alert")
      .getByText("You can only add or remove yourself; the recipient list has changed meanwhile.")
      .waitFor();
    await members
      .getByRole("listitem")
      .filter({ hasText: "ada" })
      .getByText("Does not get alert e-mail")
      .waitFor();
    expect(await mine.isChecked()).toBe(true);
    axe.selfRefused = await capture(page, "a09-recipient-self-refused-360");
    await page.keyboard.press("Space");
    await page.getByText("You no longer get alert e-mail for Staging Web.").waitFor();
    expect(mock.recipientPuts).toEqual([{ userIds: [ADA, GRACE] }, { userIds: [] }]);
    expect(mock.writeStatuses).toEqual([202, 403, 202]);

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
    expect(mock.preferencePatches).toEqual([{ preferences: { trialEnding: false } }]);
    expect(await sidewaysOverflow(page)).toBeLessThanOrEqual(0);
    axe.preferences = await capture(page, "a10-email-preferences-360");
    await page.reload();
    await page.getByRole("heading", { name: "E-mail notifications", level: 1 }).waitFor();
    await expect.poll(() => trial.isChecked()).toBe(false);
    expect(await page.getByRole("switch", { name: "Grafana is ready" }).isChecked()).toBe(true);

    expect(cspViolations).toEqual([]);
    for (const [screen, violations] of Object.entries(axe)) expect(violations, screen).toEqual([]);
  }, 90_000);
});
