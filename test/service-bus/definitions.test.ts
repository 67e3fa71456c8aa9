import { readFileSync } from "node:fs";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { loadQueueDefinitions, parseIsoDuration } from "../../local/service-bus/index.js";

describe("queue definitions", () => {
  it("when ISO 8601 durations are parsed, then they yield milliseconds and malformed ones are rejected", () => {
    expect(parseIsoDuration("PT1M")).toBe(60_000);
    expect(parseIsoDuration("PT10M")).toBe(600_000);
    expect(parseIsoDuration("PT2M")).toBe(120_000);
    expect(parseIsoDuration("P14D")).toBe(14 * 86_400_000);
    expect(parseIsoDuration("P1DT2H30.5S")).toBe(86_400_000 + 7_200_000 + 30_500);
    expect(parseIsoDuration("PT0.25S")).toBe(250);
    for (const bad of ["", "P", "PT", "1M", "PT1X", "P1H", "PT-1M"]) {
      expect(() => parseIsoDuration(bad), bad).toThrow(/Invalid ISO 8601 duration/);
    }
  });

  it("when no file is given, then the queues of bicep/queues.json are declared", () => {
    const raw = JSON.parse(
      readFileSync(join(import.meta.dirname, "../../bicep/queues.json"), "utf8"),
    ) as {
      queues: { name: string; requiresSession: boolean; maxDeliveryCount: number }[];
    };
    const queues = loadQueueDefinitions();
    expect(queues.map((q) => q.name)).toEqual(raw.queues.map((q) => q.name));
    expect(queues.map((q) => q.requiresSession)).toEqual(raw.queues.map((q) => q.requiresSession));
    expect(queues.map((q) => q.maxDeliveryCount)).toEqual(
      raw.queues.map((q) => q.maxDeliveryCount),
    );
    const provisioning = queues.find((q) => q.name === "provisioning");
    expect(provisioning).toEqual({
      name: "provisioning",
      requiresSession: true,
      requiresDuplicateDetection: true,
      duplicateDetectionWindowMs: 600_000,
      lockDurationMs: 60_000,
      maxDeliveryCount: 10,
    });
  });

  it("when a declaration is malformed, then loading fails with the queue named", () => {
    const dir = mkdtempSync(join(tmpdir(), "queues-"));
    const file = join(dir, "queues.json");
    writeFileSync(
      file,
      JSON.stringify({
        queues: [
          {
            name: "broken",
            requiresSession: false,
            requiresDuplicateDetection: false,
            duplicateDetectionHistoryTimeWindow: "PT10M",
            lockDuration: "one minute",
            maxDeliveryCount: 10,
          },
        ],
      }),
    );
    expect(() => loadQueueDefinitions(file)).toThrow(/Invalid ISO 8601 duration: "one minute"/);
    writeFileSync(file, JSON.stringify({ queues: [{ name: "partial" }] }));
    expect(() => loadQueueDefinitions(file)).toThrow(/"partial": ".+" must be a/);
  });
});
