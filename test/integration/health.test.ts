import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { allDefinitions } from "../../functions/all.js";
import { createServices } from "../../lib/services.js";
import { loadConfig } from "../../lib/config.js";
import type { Platform } from "../../local/platform.js";
import { TestClient } from "../helpers/client.js";
import { startTestPlatform } from "../helpers/platform.js";

describe("GET /api/health", () => {
  let platform: Platform;
  beforeAll(async () => {
    platform = await startTestPlatform();
  });
  afterAll(async () => {
    await platform.close();
  });

  it("when storage and Service Bus answer, then it is 200 with each dependency ok", async () => {
    const client = new TestClient(allDefinitions, platform.services);
    const res = await client.get("/api/health");
    expect(res.status).toBe(200);
    expect(res.body.status).toBe("ok");
    expect(res.body.checks.storage.status).toBe("ok");
    expect(res.body.checks.serviceBus.status).toBe("ok");
  });

  it("when Service Bus is unreachable, then it is 503 naming serviceBus and no secret", async () => {
    const badBus =
      "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=very-secret-value;UseDevelopmentEmulator=true";
    const services = createServices(loadConfig({ ...platform.env, ServiceBusConnection: badBus }));
    try {
      const client = new TestClient(allDefinitions, services);
      const res = await client.get("/api/health");
      expect(res.status).toBe(503);
      expect(res.body.checks.serviceBus.status).toBe("failing");
      expect(res.body.checks.storage.status).toBe("ok");
      expect(res.text).not.toContain("very-secret-value");
    } finally {
      await services.close();
    }
  });
});
