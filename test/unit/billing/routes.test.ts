import { describe, expect, it } from "vitest";

import { definitions as billing } from "../../../functions/billing.js";
import { definitions as webhook } from "../../../functions/stripe-webhook.js";
import { buildOpenApi } from "../../../lib/openapi.js";

const all = [...billing, ...webhook];

describe("billing routes", () => {
  it("when registered, then routes, methods, callers and the webhook's raw body are the contract's", () => {
    const table = all.map((d) =>
      d.kind === "http" ? `${d.methods.join(",")} ${d.route} ${d.spec.caller}` : d.name,
    );
    expect(table).toEqual([
      "GET billing session",
      "POST billing/checkout verified",
      "POST billing/portal verified",
      "POST webhooks/stripe stripe",
    ]);
    const hook = webhook[0];
    expect(
      hook?.kind === "http" && hook.spec.caller === "stripe" && hook.spec.checkOrigin === false,
    ).toBe(true);
    expect(all.every((d) => d.kind === "http" && d.authLevel === "anonymous")).toBe(true);
  });

  it("when documented, then the OpenAPI document has the overview schema and the webhook's errors", () => {
    interface Op {
      responses: Record<
        string,
        { content?: Record<string, { schema: { properties?: Record<string, unknown> } }> }
      >;
    }
    const doc = buildOpenApi(all, "https://app.example.com") as {
      paths: Record<string, Record<string, Op>>;
    };
    expect(Object.keys(doc.paths).sort()).toEqual([
      "/api/billing",
      "/api/billing/checkout",
      "/api/billing/portal",
      "/api/webhooks/stripe",
    ]);
    const overview =
      doc.paths["/api/billing"]?.get?.responses["200"]?.content?.["application/json"]?.schema;
    expect(Object.keys(overview?.properties ?? {}).sort()).toEqual(
      ["freeInstances", "graceEndsAt", "instances", "nextInvoice", "plan", "subscription"].sort(),
    );
    expect(Object.keys(doc.paths["/api/webhooks/stripe"]?.post?.responses ?? {})).toEqual(
      expect.arrayContaining(["200", "400", "409", "503"]),
    );
  });
});
