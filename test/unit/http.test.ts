import { HttpRequest, HttpResponse, InvocationContext } from "@azure/functions";
import { describe, expect, it } from "vitest";
import { z } from "zod";

import { AppError } from "../../lib/errors.js";
import { assertSameOrigin, readJsonBody, toResponse } from "../../lib/http.js";
import { defineHttp } from "../../lib/functions.js";
import type { Services } from "../../lib/services.js";

function ctx(logs: unknown[][]) {
  return new InvocationContext({
    functionName: "t",
    invocationId: "inv-42",
    logHandler: (_l, ...a) => logs.push(a),
  });
}

describe("toResponse", () => {
  it("when an AppError below 500 is thrown, then its code and message are answered", async () => {
    const res = new HttpResponse(
      toResponse(new AppError(409, "conflict", "Already there."), ctx([])),
    );
    expect(res.status).toBe(409);
    expect(await res.json()).toEqual({ error: { code: "conflict", message: "Already there." } });
  });

  it("when anything else is thrown, then a generic 500 with the invocation id is answered and the error logged", async () => {
    const logs: unknown[][] = [];
    const res = new HttpResponse(
      toResponse(new TypeError("secret internals at line 3"), ctx(logs)),
    );
    expect(res.status).toBe(500);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("internal");
    expect(body.error.message).toContain("inv-42");
    expect(JSON.stringify(body)).not.toContain("secret internals");
    expect(JSON.stringify(logs)).toContain("secret internals");
  });
});

describe("request guards", () => {
  it("when the Origin is foreign or missing, then state-changing requests are refused", () => {
    const req = (headers: Record<string, string>) =>
      new HttpRequest({ method: "POST", url: "http://x/api/a", headers });
    expect(() =>
      assertSameOrigin(req({ origin: "https://evil.example" }), "https://app.example.com"),
    ).toThrow(AppError);
    expect(() => assertSameOrigin(req({}), "https://app.example.com")).toThrow(/Origin/);
    expect(() =>
      assertSameOrigin(req({ origin: "https://app.example.com" }), "https://app.example.com"),
    ).not.toThrow();
    expect(() =>
      assertSameOrigin(req({ referer: "https://app.example.com/x" }), "https://app.example.com"),
    ).not.toThrow();
  });

  it("when the body is malformed JSON, then it is a 400", async () => {
    const req = new HttpRequest({
      method: "POST",
      url: "http://x/api/a",
      body: { string: "{nope" },
    });
    await expect(readJsonBody(req)).rejects.toMatchObject({ status: 400, code: "bad_request" });
  });

  it("when a route's body schema fails, then the handler is not called and a 400 names the field", async () => {
    let called = false;
    const def = defineHttp({
      name: "t",
      route: "t/{ref}",
      methods: ["POST"],
      caller: "anyone",
      summary: "t",
      tags: [],
      params: z.object({ ref: z.string().regex(/^[a-z]{20}$/) }),
      body: z.object({ userId: z.string().min(1) }),
      responses: { 200: { description: "ok" } },
      errors: [400],
      checkOrigin: false,
      handler: () => {
        called = true;
        return Promise.resolve({ status: 200 });
      },
    });
    const services = {
      config: { PUBLIC_BASE_URL: "https://app.example.com" },
    } as unknown as Services;
    const req = new HttpRequest({
      method: "POST",
      url: "http://x/api/t/abcdefghijabcdefghij",
      params: { ref: "abcdefghijabcdefghij" },
      body: { string: JSON.stringify({ userId: 7 }) },
    });
    const res = new HttpResponse(await def.handler(req, ctx([]), services));
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain(
      "userId",
    );
    expect(called).toBe(false);
  });
});
