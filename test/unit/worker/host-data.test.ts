/**
 * The host's trigger data, converted by `@azure/functions` itself: what a handler sees in Azure.
 */
import azureFunctions, { type InvocationContext } from "@azure/functions";
import { describe, expect, it } from "vitest";

import { captureRegistrations } from "../../../local/worker/core-api.js";
import { indexRegistry } from "../../../local/worker/app.js";
import {
  decodeRouteValue,
  dotnetOffset,
  dotnetUtc,
  httpTriggerInput,
  serviceBusTriggerInput,
  setCookieLine,
} from "../../../local/worker/host-data.js";
import { serviceBusTriggerMetadata } from "../../../local/worker/trigger-context.js";

describe("Service Bus trigger data", () => {
  it("when a dead letter is delivered, then its reason is only in applicationProperties, camel-cased", async () => {
    const meta = await serviceBusTriggerMetadata({
      body: { ref: "x" },
      messageId: "op:deploy",
      sessionId: "abcdefghijabcdefghij",
      deliveryCount: 9,
      sequenceNumber: 42,
      enqueuedTimeUtc: new Date("2026-12-02T03:04:05.678Z"),
      applicationProperties: { origin: "api" },
      deadLetterReason: "MaxDeliveryCountExceeded",
      deadLetterErrorDescription: "too many",
    });
    expect(meta).not.toHaveProperty("deadLetterReason");
    expect(meta.applicationProperties).toEqual({
      origin: "api",
      deadLetterReason: "MaxDeliveryCountExceeded",
      deadLetterErrorDescription: "too many",
    });
    expect(meta).toMatchObject({
      messageId: "op:deploy",
      sessionId: "abcdefghijabcdefghij",
      deliveryCount: 10,
      sequenceNumber: 42,
      enqueuedTimeUtc: "2026-12-02T03:04:05.6780000Z",
      enqueuedTime: "2026-12-02T03:04:05.6780000+00:00",
      userProperties: meta.applicationProperties,
    });
  });

  it("when the raw binding data is built, then it has the extension's keys and encodings, nulls left out", () => {
    const input = serviceBusTriggerInput(
      { body: Buffer.from('{"a":1}'), messageId: "m1", deliveryCount: 0 },
      { bindingName: "serviceBusTrigger1a2b", isSessionsEnabled: false },
    );
    expect(input.inputData).toEqual([
      { name: "serviceBusTrigger1a2b", data: { string: '{"a":1}' } },
    ]);
    expect(Object.keys(input.triggerMetadata).sort()).toEqual(
      [
        "ApplicationProperties",
        "Client",
        "DeliveryCount",
        "EnqueuedTime",
        "EnqueuedTimeUtc",
        "ExpiresAt",
        "ExpiresAtUtc",
        "LockToken",
        "MessageActions",
        "MessageId",
        "MessageReceiver",
        "ReceiveActions",
        "SequenceNumber",
        "UserProperties",
      ].sort(),
    );
    expect(input.triggerMetadata.DeliveryCount).toEqual({ json: "1" });
    expect(dotnetUtc(new Date("2026-01-01T00:00:00.000Z"))).toBe("2026-01-01T00:00:00.0000000Z");
    expect(dotnetOffset(new Date("2026-01-01T00:00:00.120Z"))).toBe(
      "2026-01-01T00:00:00.1200000+00:00",
    );
  });
});

describe("HTTP trigger data", () => {
  it("when a request goes through the programming model, then the handler gets the request and its cookies reach the client", async () => {
    let seen: { url: string; params: Record<string, string>; body: string; cookie: string | null } =
      { url: "", params: {}, body: "", cookie: null };
    const registry = await captureRegistrations(() => {
      azureFunctions.app.http("probeHttp", {
        route: "things/{id}",
        methods: ["POST"],
        authLevel: "anonymous",
        handler: async (req, _ctx: InvocationContext) => {
          seen = {
            url: req.url,
            params: { ...req.params },
            body: await req.text(),
            cookie: req.headers.get("cookie"),
          };
          return {
            status: 201,
            jsonBody: { ok: true },
            cookies: [
              { name: "a", value: "1", httpOnly: true, secure: true, sameSite: "Lax", path: "/" },
              { name: "b", value: "2", maxAge: 0 },
            ],
          };
        },
      });
    });
    const app = indexRegistry(registry);
    const fn = app.functions[0]!;
    const response = await app.invoke(
      fn.name,
      httpTriggerInput({
        bindingName: fn.bindingName,
        method: "POST",
        url: new URL("http://localhost:7071/api/things/%E2%82%AC?x=1&x=2"),
        headers: { cookie: "s=1", "content-type": "application/json" },
        params: { id: decodeRouteValue("%E2%82%AC") },
        body: Buffer.from('{"hello":"world"}'),
      }),
    );
    expect(seen).toEqual({
      url: "http://localhost:7071/api/things/%E2%82%AC?x=1&x=2",
      params: { id: "€" },
      body: '{"hello":"world"}',
      cookie: "s=1",
    });
    const http = response.returnValue?.http;
    expect(http?.statusCode).toBe("201");
    expect(Buffer.from(http?.body?.bytes ?? []).toString()).toBe('{"ok":true}');
    expect((http?.cookies ?? []).map(setCookieLine)).toEqual([
      "a=1; path=/; secure; samesite=lax; httponly",
      "b=2; max-age=0; path=/",
    ]);
  });

  it("when a route value holds an invalid escape, then it stays as sent", () => {
    expect(decodeRouteValue("%ZZ")).toBe("%ZZ");
    expect(decodeRouteValue("%c0%ae")).toBe("%c0%ae");
    expect(decodeRouteValue("a%20b")).toBe("a b");
  });
});
