import { describe, expect, it } from "vitest";

import { ConfigError, loadConfig, settingNames } from "../../lib/config.js";
import { validEnv } from "../helpers/env.js";

describe("config", () => {
  it("when every setting is valid, then it parses with the real defaults for endpoints", () => {
    const config = loadConfig(validEnv());
    expect(config.SUPABASE_API_URL).toBe("https://api.supabase.com");
    expect(config.ARM_ENDPOINT).toBe("https://management.azure.com");
    expect(config.STRIPE_API_URL).toBeUndefined();
    expect(config.TRIAL_HOURS).toBe(72);
  });

  it("when several settings are bad, then one error lists every bad key and no value", () => {
    const env = validEnv();
    delete (env as Partial<typeof env>).SUPABASE_CLIENT_ID;
    env.GATEWAY_PUBLIC_IP = "not-an-ip";
    env.SESSION_SECRET = "short-secret-value";
    env.PUBLIC_BASE_URL = "http://app.example.com";
    delete (env as Partial<typeof env>).ServiceBusConnection;
    let error: unknown;
    try {
      loadConfig(env);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const keys = (error as ConfigError).problems.map((p) => p.key).sort();
    expect(keys).toEqual(
      [
        "GATEWAY_PUBLIC_IP",
        "PUBLIC_BASE_URL",
        "SESSION_SECRET",
        "SUPABASE_CLIENT_ID",
        "ServiceBusConnection",
      ].sort(),
    );
    expect((error as ConfigError).message).not.toContain("short-secret-value");
  });

  it("when SECRET_KEYS holds a key of the wrong size, then it is refused", () => {
    const env = {
      ...validEnv(),
      SECRET_KEYS: JSON.stringify({ a: Buffer.alloc(16).toString("base64") }),
    };
    expect(() => loadConfig(env)).toThrow(/SECRET_KEYS: key "a" must decode to 32 bytes/);
  });

  it("when SECRET_KEYS holds several kids, then the greatest encrypts and all are kept", () => {
    const key = Buffer.alloc(32, 1).toString("base64");
    const config = loadConfig({
      ...validEnv(),
      SECRET_KEYS: JSON.stringify({ "2026-11": key, "2025-01": key }),
    });
    expect(config.SECRET_KEYS.current).toBe("2026-11");
    expect([...config.SECRET_KEYS.keys.keys()].sort()).toEqual(["2025-01", "2026-11"]);
  });

  it("when the identity-based connections are set instead of strings, then it parses", () => {
    const env = validEnv();
    delete (env as Partial<typeof env>).StorageConnection;
    delete (env as Partial<typeof env>).ServiceBusConnection;
    env.StorageConnection__tableServiceUri = "https://acct.table.core.windows.net";
    env.ServiceBusConnection__fullyQualifiedNamespace = "ns.servicebus.windows.net";
    expect(() => loadConfig(env)).not.toThrow();
  });

  it("lists every setting name it reads", () => {
    expect(settingNames).toContain("SECRET_KEYS");
    expect(settingNames).toContain("ServiceBusConnection__fullyQualifiedNamespace");
    expect(new Set(settingNames).size).toBe(settingNames.length);
  });
});

describe("local.settings.example.json", () => {
  it("documents exactly the settings the app reads", async () => {
    const { readFile } = await import("node:fs/promises");
    const example = JSON.parse(await readFile("local.settings.example.json", "utf8")) as {
      Values: Record<string, string>;
    };
    const documented = Object.keys(example.Values).filter(
      (k) => !["FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage"].includes(k),
    );
    expect(documented.sort()).toEqual([...settingNames].sort());
  });
});
