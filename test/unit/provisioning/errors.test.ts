import { RestError, createHttpHeaders, createPipelineRequest } from "@azure/core-rest-pipeline";
import { describe, expect, it } from "vitest";

import { ArmRequestError, describeFailure, parseRetryAfter } from "../../../lib/azure/errors.js";
import { AppError } from "../../../lib/errors.js";

function restError(
  status: number | undefined,
  body?: unknown,
  headers: Record<string, string> = {},
  code?: string,
) {
  const request = createPipelineRequest({ url: "https://management.azure.com/x" });
  return new RestError("failed", {
    ...(status !== undefined ? { statusCode: status } : {}),
    ...(code ? { code } : {}),
    ...(status !== undefined
      ? {
          response: {
            status,
            headers: createHttpHeaders(headers),
            request,
            ...(body !== undefined ? { bodyAsText: JSON.stringify(body) } : {}),
          },
        }
      : {}),
  });
}

describe("describeFailure", () => {
  it("when ARM throttles, then it is transient with the Retry-After it asked for", () => {
    const info = describeFailure(
      restError(
        429,
        { error: { code: "TooManyRequests", message: "slow down" } },
        { "retry-after": "7" },
      ),
    );
    expect(info).toMatchObject({
      transient: true,
      unexpected: false,
      status: 429,
      code: "TooManyRequests",
      retryAfterMs: 7000,
    });
    expect(info.message).toBe("Azure answered 429 TooManyRequests: slow down");
  });

  it("when ARM fails with 5xx or the connection drops, then it is transient; 400/403 are not", () => {
    expect(
      describeFailure(restError(500, { error: { code: "InternalServerError", message: "x" } }))
        .transient,
    ).toBe(true);
    expect(describeFailure(restError(undefined, undefined, {}, "ECONNRESET"))).toMatchObject({
      transient: true,
      code: "ECONNRESET",
    });
    expect(
      describeFailure(Object.assign(new Error("aborted"), { name: "AbortError" })).transient,
    ).toBe(true);
    expect(
      describeFailure(restError(400, { error: { code: "InvalidTemplate", message: "bad" } }))
        .transient,
    ).toBe(false);
    expect(
      describeFailure(restError(403, { error: { code: "AuthorizationFailed", message: "no" } })),
    ).toMatchObject({
      transient: false,
      unexpected: false,
    });
  });

  it("when a Supabase call fails, then 429/503 are transient with their wait and 401/404 are final", () => {
    expect(
      describeFailure(new AppError(503, "unavailable", "busy", { retryAfterSeconds: 12 })),
    ).toMatchObject({
      transient: true,
      retryAfterMs: 12_000,
    });
    expect(describeFailure(new AppError(401, "installation_revoked", "Reconnect."))).toMatchObject({
      transient: false,
      message: "Reconnect.",
    });
    expect(describeFailure(new AppError(404, "not_found", "gone")).transient).toBe(false);
    // Supabase refused the request (a 4xx behind a 502 or 409): retrying cannot help.
    const refused = new AppError(
      502,
      "upstream_error",
      "Supabase refused it (HTTP 400).",
      undefined,
      {
        permanent: true,
      },
    );
    expect(describeFailure(refused)).toMatchObject({
      transient: false,
      unexpected: false,
      message: "Supabase refused it (HTTP 400).",
    });
    expect(describeFailure(new AppError(502, "upstream_error", "down")).transient).toBe(true);
  });

  it("when the error is a bug, then it is unexpected (it must propagate)", () => {
    expect(describeFailure(new TypeError("x is undefined")).unexpected).toBe(true);
    expect(describeFailure("boom").unexpected).toBe(true);
  });

  it("when a raw ARM answer is an error, then its status and code are kept and long messages are cut", () => {
    const info = describeFailure(new ArmRequestError(409, "Conflict", "x".repeat(1000), 2000));
    expect(info).toMatchObject({
      transient: true,
      status: 409,
      code: "Conflict",
      retryAfterMs: 2000,
    });
    expect(info.message.length).toBeLessThanOrEqual(300);
  });
});

describe("parseRetryAfter", () => {
  it("when given seconds or an HTTP date, then it answers milliseconds", () => {
    expect(parseRetryAfter("3")).toBe(3000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4000)).toBe(6000);
    expect(parseRetryAfter(undefined)).toBeUndefined();
    expect(parseRetryAfter("soon")).toBeUndefined();
  });
});
