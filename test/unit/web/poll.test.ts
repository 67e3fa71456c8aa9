import { describe, expect, it } from "vitest";

import { backoffDelay, backoffInterval, isInFlight } from "../../../web/src/poll.js";

describe("web app polling", () => {
  it("when an operation runs, then only its in-flight states are polled", () => {
    for (const s of ["Requested", "Deploying", "Configuring", "Verifying", "Deleting"])
      expect(isInFlight(s), s).toBe(true);
    for (const s of ["Running", "Deleted", "Failed", undefined]) expect(isInFlight(s)).toBe(false);
  });

  it("when a state does not change, then the delay grows to its cap", () => {
    const delays = Array.from({ length: 10 }, (_, i) => backoffDelay(i));
    expect(delays[0]).toBe(1000);
    for (let i = 1; i < delays.length; i++)
      expect(delays[i]!).toBeGreaterThanOrEqual(delays[i - 1]!);
    expect(delays.at(-1)).toBe(10_000);
  });

  it("when the key changes, the back-off starts again; when nothing is in flight, it stops", () => {
    type D = { state: string; step: string } | undefined;
    const interval = backoffInterval<D>((d) =>
      d && isInFlight(d.state) ? `${d.state}/${d.step}` : undefined,
    );
    const query = {
      state: { data: { state: "Deploying", step: "deploy" } as D, dataUpdateCount: 1 },
    };
    expect(interval(query)).toBe(1000);
    // Asked again without a new answer: the same delay (not counted twice).
    expect(interval(query)).toBe(1000);
    query.state.dataUpdateCount = 2;
    expect(interval(query)).toBe(1500);
    query.state.dataUpdateCount = 3;
    expect(interval(query)).toBe(2250);
    query.state = { data: { state: "Configuring", step: "configure" }, dataUpdateCount: 4 };
    expect(interval(query)).toBe(1000);
    query.state = { data: { state: "Running", step: "done" }, dataUpdateCount: 5 };
    expect(interval(query)).toBe(false);
  });
});
