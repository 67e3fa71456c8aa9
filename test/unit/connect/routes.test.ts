import { describe, expect, it } from "vitest";

import { definitions as auth } from "../../../functions/auth.js";
import { definitions as me } from "../../../functions/me.js";
import { definitions as projects } from "../../../functions/projects.js";
import { buildOpenApi } from "../../../lib/openapi.js";

const all = [...auth, ...me, ...projects];

describe("connect routes", () => {
  it("when registered, then routes, methods and callers are the contract's", () => {
    const table = all.map((d) =>
      d.kind === "http" ? `${d.methods.join(",")} ${d.route} ${d.spec.caller}` : d.name,
    );
    expect(table).toEqual([
      "GET auth/login anyone",
      "GET auth/callback anyone",
      "POST auth/logout session",
      "GET me session",
      "GET org/members session",
      "POST me/verification session",
      "POST me/verification/confirm session",
      "GET projects session",
    ]);
    expect(all.every((d) => d.kind === "http" && d.authLevel === "anonymous")).toBe(true);
  });

  it("when documented, then the OpenAPI document describes each with its schemas", () => {
    interface Content {
      schema: { required?: string[]; properties?: Record<string, unknown> };
    }
    interface Op {
      requestBody?: { content: Record<string, Content> };
      responses: Record<string, { content?: Record<string, Content> }>;
    }
    const doc = buildOpenApi(all, "https://app.example.com") as {
      paths: Record<string, Record<string, Op>>;
    };
    expect(Object.keys(doc.paths).sort()).toEqual([
      "/api/auth/callback",
      "/api/auth/login",
      "/api/auth/logout",
      "/api/me",
      "/api/me/verification",
      "/api/me/verification/confirm",
      "/api/org/members",
      "/api/projects",
    ]);
    const confirm = doc.paths["/api/me/verification/confirm"]?.post;
    expect(confirm?.requestBody?.content["application/json"]?.schema.required).toEqual([
      "userId",
      "code",
    ]);
    expect(Object.keys(confirm?.responses ?? {})).toEqual(
      expect.arrayContaining(["200", "400", "403", "429"]),
    );
    const list = doc.paths["/api/projects"]?.get?.responses["200"]?.content?.["application/json"];
    expect(list?.schema.properties?.projects).toBeDefined();
  });
});
