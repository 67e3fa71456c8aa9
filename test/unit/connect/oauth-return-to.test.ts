import { describe, expect, it } from "vitest";

import { safeReturnTo } from "../../../lib/auth/oauth.js";

const BASE = "https://app.example.com";

describe("safeReturnTo", () => {
  it("when returnTo is missing or empty, then it is the root path", () => {
    expect(safeReturnTo(BASE, undefined)).toBe("/");
    expect(safeReturnTo(BASE, "")).toBe("/");
  });

  it("when returnTo is a same-origin path with query and fragment, then it is kept", () => {
    expect(safeReturnTo(BASE, "/dashboard?tab=projects#top")).toBe("/dashboard?tab=projects#top");
    expect(safeReturnTo(BASE, "/a/../b")).toBe("/b");
    expect(safeReturnTo(BASE, "/%2F%2Fevil.example")).toBe("/%2F%2Fevil.example");
  });

  it.each([
    "https://evil.example/",
    "http://app.example.com/dashboard",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\/evil.example",
    "/\\/evil.example",
    "javascript:alert(1)",
    "evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/ /evil.example",
    "/..//evil.example",
    `/${"a".repeat(2000)}`,
  ])("when returnTo is %j, then it is refused", (raw) => {
    expect(safeReturnTo(BASE, raw)).toBeUndefined();
  });
});
