import { describe, expect, it } from "vitest";

import { parseSchedule } from "../../local/cron.js";

describe("NCRONTAB schedules", () => {
  it("when the schedule is every five minutes, then the next run is the next multiple of five", () => {
    const s = parseSchedule("0 */5 * * * *");
    expect(s.next(new Date("2026-01-01T10:02:30Z")).toISOString()).toBe("2026-01-01T10:05:00.000Z");
    expect(s.next(new Date("2026-01-01T10:05:00Z")).toISOString()).toBe("2026-01-01T10:10:00.000Z");
  });

  it("when the schedule names a day of week, then it skips to that day", () => {
    const s = parseSchedule("0 30 9 * * 1");
    expect(s.next(new Date("2026-11-21T12:00:00Z")).toISOString()).toBe("2026-11-23T09:30:00.000Z");
  });

  it("when the expression is malformed, then it throws", () => {
    expect(() => parseSchedule("*/5 * * * *")).toThrow(/six fields/);
    expect(() => parseSchedule("0 61 * * * *")).toThrow(/bad value/);
  });
});
