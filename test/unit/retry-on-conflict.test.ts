import { describe, expect, it } from "vitest";

import { AppError } from "../../lib/errors.js";
import { lostRace, retryOnConflict } from "../../lib/storage/tables.js";

const conflict = () => Object.assign(new Error("precondition failed"), { statusCode: 412 });

describe("retryOnConflict", () => {
  it("when a round loses a race, then it runs again and returns the winning round's value", async () => {
    const rounds: number[] = [];
    const value = await retryOnConflict((round) => {
      rounds.push(round);
      if (round < 2) return Promise.reject(round === 0 ? conflict() : lostRace());
      return Promise.resolve("saved");
    });
    expect(value).toBe("saved");
    expect(rounds).toEqual([0, 1, 2]);
  });

  it("when every round loses, then exhausted() is thrown (a 503 by default) or returned", async () => {
    const always = () => Promise.reject(conflict());
    await expect(retryOnConflict(always, { rounds: 3 })).rejects.toMatchObject({
      status: 503,
      code: "unavailable",
    });
    await expect(retryOnConflict<boolean>(always, { exhausted: () => false })).resolves.toBe(false);
    const mine = new AppError(429, "busy", "busy");
    await expect(retryOnConflict(always, { exhausted: () => mine })).rejects.toBe(mine);
  });

  it("when another error is thrown, then it is not retried", async () => {
    let calls = 0;
    const boom = new Error("boom");
    await expect(
      retryOnConflict(() => {
        calls += 1;
        return Promise.reject(boom);
      }),
    ).rejects.toBe(boom);
    expect(calls).toBe(1);
  });

  it("when given a pause, then it runs between rounds only", async () => {
    let pauses = 0;
    await retryOnConflict(() => Promise.reject(conflict()), {
      rounds: 4,
      exhausted: () => undefined,
      pause: () => Promise.resolve((pauses += 1)),
    });
    expect(pauses).toBe(3);
  });
});
