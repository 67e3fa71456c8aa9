import { describe, expect, it } from "vitest";

import { maskEmail } from "../../../lib/auth/verification.js";

describe("maskEmail", () => {
  it("when an address has a local part, then only its first character and the domain show", () => {
    expect(maskEmail("jane.doe@example.com")).toBe("j***@example.com");
    expect(maskEmail("a@b.co")).toBe("a***@b.co");
  });

  it("when the value is not an address, then nothing of it shows", () => {
    expect(maskEmail("not-an-address")).toBe("***");
  });
});
