import { describe, expect, it } from "vitest";

import { renderSigninScript, signinScriptFileName } from "../../../lib/gateway/signin-njs.js";

const base = {
  keysPath: "/etc/nginx/supafana-keys/grafana-session-keys.json",
  usedTicketsDir: "/var/lib/supafana-gateway/used-tickets",
  appUrl: "https://app.example.com",
};

describe("renderSigninScript", () => {
  it("when rendered twice with the same values, then the bytes and the file name are equal", () => {
    const a = renderSigninScript(base);
    expect(renderSigninScript(base)).toBe(a);
    expect(signinScriptFileName(a)).toMatch(/^signin-[0-9a-f]{16}\.js$/);
    expect(signinScriptFileName(renderSigninScript({ ...base, sessionTtlSeconds: 3600 }))).not.toBe(
      signinScriptFileName(a),
    );
    expect(a).toContain('var KEYS_PATH = "/etc/nginx/supafana-keys/grafana-session-keys.json";');
    expect(a).toContain("var SESSION_TTL = 28800;");
  });

  it("when the app URL holds characters that would break out of a string, then they stay inside it", () => {
    const script = renderSigninScript({ ...base, appUrl: "https://app.example.com/a'\"</script>" });
    const line = script.split("\n").find((l) => l.startsWith("var APP_URL = ")) ?? "";
    expect(JSON.parse(line.slice("var APP_URL = ".length, -1))).toBe(
      "https://app.example.com/a'%22%3C/script%3E",
    );
  });

  it.each([
    ["a relative keys path", { keysPath: "keys.json" }],
    ["a used-tickets dir with ..", { usedTicketsDir: "/var/../tmp" }],
    ["a session longer than 12 h", { sessionTtlSeconds: 12 * 3600 + 1 }],
    ["a session under a minute", { sessionTtlSeconds: 59 }],
    ["a non-http app URL", { appUrl: "javascript:alert(1)" }],
  ])("when given %s, then it throws", (_name, extra) => {
    expect(() => renderSigninScript({ ...base, ...extra })).toThrow();
  });
});
