import { describe, expect, it } from "vitest";

import {
  configState,
  edit,
  enabledOf,
  inputOf,
  isDirty,
  newerVersion,
  paramError,
  prepare,
  withSelf,
  withUnit,
  type AlertDraft,
} from "../../../web/src/alertsDraft.js";

const threshold = {
  name: "threshold",
  label: "CPU usage above",
  unit: "%",
  value: 80,
  min: 50,
  max: 99,
  step: 1,
};
const forMinutes = {
  name: "for",
  label: "For at least",
  unit: "minutes",
  value: 5,
  min: 1,
  max: 60,
  step: 1,
};
const alerts = [
  { id: "high-cpu", enabled: true, params: [threshold, forMinutes] },
  { id: "disk-full", enabled: false, params: [{ ...threshold, value: 90, step: 0.5 }] },
];

describe("web app: the Alerts screen's draft", () => {
  it("when nothing was edited, then the server's values show and nothing is sent", () => {
    expect(enabledOf(alerts[0]!, {})).toBe(true);
    expect(inputOf(alerts[0]!, threshold, {})).toBe("80");
    expect(prepare(alerts, {})).toEqual({ patch: { alerts: {} }, errors: {} });
    expect(isDirty(alerts, {})).toBe(false);
  });

  it("when values are edited, then only what differs from the server is sent", () => {
    let draft: AlertDraft = {};
    draft = edit(draft, "high-cpu", { param: "threshold", input: "90" });
    draft = edit(draft, "high-cpu", { param: "for", input: " 5 " }); // typed, but the same
    draft = edit(draft, "disk-full", { enabled: true });
    expect(inputOf(alerts[0]!, threshold, draft)).toBe("90");
    expect(prepare(alerts, draft)).toEqual({
      patch: {
        alerts: { "high-cpu": { params: { threshold: 90 } }, "disk-full": { enabled: true } },
      },
      errors: {},
    });
    expect(isDirty(alerts, draft)).toBe(true);
  });

  it("when an edit is undone by hand, then the alert is not sent", () => {
    let draft = edit({}, "high-cpu", { enabled: false });
    draft = edit(draft, "high-cpu", { enabled: true });
    draft = edit(draft, "high-cpu", { param: "threshold", input: "81" });
    draft = edit(draft, "high-cpu", { param: "threshold", input: "80" });
    expect(prepare(alerts, draft).patch).toEqual({ alerts: {} });
    expect(isDirty(alerts, draft)).toBe(false);
  });

  it("when a value is empty, not a number, out of range or off its step, then it is refused with its reason", () => {
    expect(paramError(threshold, "")).toBe("Enter a number for “CPU usage above”.");
    expect(paramError(threshold, "abc")).toBe("Enter a number for “CPU usage above”.");
    expect(paramError(threshold, "100")).toBe("“CPU usage above” must be between 50% and 99%.");
    expect(paramError(threshold, "49")).toBe("“CPU usage above” must be between 50% and 99%.");
    expect(paramError(forMinutes, "61")).toBe(
      "“For at least” must be between 1 minute and 60 minutes.",
    );
    expect(paramError(threshold, "80.5")).toMatch(/steps of 1%/);
    expect(paramError({ ...threshold, step: 0.5 }, "80.5")).toBeUndefined();
    expect(paramError({ ...threshold, step: 0.1 }, "80.3")).toBeUndefined();
    for (const ok of ["50", "99", "75"]) expect(paramError(threshold, ok), ok).toBeUndefined();

    const draft = edit({}, "high-cpu", { param: "threshold", input: "120" });
    const { patch, errors } = prepare(alerts, edit(draft, "disk-full", { enabled: true }));
    expect(errors).toEqual({ "high-cpu.threshold": expect.stringMatching(/between 50% and 99%/) });
    expect(patch).toEqual({ alerts: { "disk-full": { enabled: true } } });
    expect(isDirty(alerts, draft)).toBe(true);
  });

  it("when a value has a unit, then it reads as words do", () => {
    expect(withUnit(80, "%")).toBe("80%");
    expect(withUnit(5, "minutes")).toBe("5 minutes");
    expect(withUnit(1, "minutes")).toBe("1 minute");
    expect(withUnit(1, "ms")).toBe("1 ms");
    expect(withUnit(3, "")).toBe("3");
  });

  it("when the applied version is behind the desired one, then the configuration is applying", () => {
    expect(configState({ desired: 3, applied: 3 })).toBe("applied");
    expect(configState({ desired: 3, applied: 2 })).toBe("applying");
    expect(configState({ desired: 1, applied: null })).toBe("applying");
  });

  it("when two answers report the version, then the newer one wins whatever their order", () => {
    const a = { desired: 3, applied: 2 };
    const b = { desired: 4, applied: 2 };
    const c = { desired: 4, applied: 4 };
    expect(newerVersion(a, b)).toBe(b);
    expect(newerVersion(b, a)).toBe(b);
    expect(newerVersion(b, c)).toBe(c);
    expect(newerVersion(c, b)).toBe(c);
    expect(newerVersion({ desired: 1, applied: null }, { desired: 1, applied: 1 })).toEqual({
      desired: 1,
      applied: 1,
    });
  });

  it("when a member switches alert e-mail for themselves, then only their own id changes", () => {
    expect(withSelf(["a", "b"], "c", true)).toEqual(["a", "b", "c"]);
    expect(withSelf(["a", "c", "b"], "c", false)).toEqual(["a", "b"]);
    expect(withSelf(["a", "c"], "c", true)).toEqual(["a", "c"]);
    expect(withSelf(["a"], "c", false)).toEqual(["a"]);
  });
});
