/**
 * The API contract: the OpenAPI document is valid, covers every route, and every route answers
 * the documented 400 (one error shape) when a required field is missing or a field is invalid.
 */
import { compileErrors, validate } from "@readme/openapi-parser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { allDefinitions } from "../../functions/all.js";
import { SESSION_COOKIE, bindUser, startSession } from "../../lib/auth/session.js";
import type { HttpDefinition } from "../../lib/functions.js";
import type { Platform } from "../../local/platform.js";
import { TestClient } from "../helpers/client.js";
import { randomSlug, startTestPlatform } from "../helpers/platform.js";

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const httpDefs = allDefinitions.filter((d): d is HttpDefinition => d.kind === "http");

/** A value that the property's schema refuses. */
function invalidValue(schema: Json): unknown {
  if (Array.isArray(schema.enum)) return "definitely-not-allowed";
  if (schema.type === "integer" || schema.type === "number") return "not-a-number";
  if (schema.type === "boolean") return "maybe";
  if (schema.type === "array") return "not-an-array";
  if (schema.type === "object") return "not-an-object";
  if (schema.pattern || schema.format || schema.minLength) return "";
  return { not: "a string" };
}

function validPathValue(name: string): string {
  return name === "ref" ? "abcdefghijklmnopqrst" : "x";
}

function fillPath(path: string, override?: [string, string]): string {
  return path.replace(/\{(\w+)\}/g, (_, name: string) =>
    override && override[0] === name ? override[1] : validPathValue(name),
  );
}

describe("OpenAPI contract", () => {
  let platform: Platform;
  let client: TestClient;
  let doc: Json;

  beforeAll(async () => {
    platform = await startTestPlatform();
    client = new TestClient(allDefinitions, platform.services);
    const res = await client.get("/api/openapi.json");
    expect(res.status).toBe(200);
    doc = res.body as Json;
    // The caller is proved before input is read: call as a verified member (and, on operator
    // routes, as a named operator) so that the input is what gets refused.
    const { session, cookie } = await startSession(platform.services, randomSlug("api"));
    await bindUser(platform.services, session.id, { id: "u1", name: "Ada", role: "Owner" });
    client.cookies.set(SESSION_COOKIE, cookie.value);
  });
  afterAll(async () => {
    await platform.close();
  });

  it("when validated by a real OpenAPI 3.1 validator, then it is valid", async () => {
    const result = await validate(structuredClone(doc) as never);
    expect(result.valid, result.valid ? "" : compileErrors(result)).toBe(true);
    expect(doc.openapi).toBe("3.1.0");
  });

  it("when listing routes, then every HTTP definition is documented with summary, responses and errors", () => {
    for (const def of httpDefs) {
      const path = `/api/${def.route}`.replace(/\{(\w+)(:\w+)?\??\}/g, "{$1}");
      for (const method of def.methods) {
        const op = doc.paths[path]?.[method.toLowerCase()] as Json | undefined;
        expect(op, `${method} ${path}`).toBeDefined();
        expect(op?.summary, `${method} ${path}`).toBeTruthy();
        expect(
          Object.keys(op?.responses ?? {}).some((s) => s.startsWith("2") || s.startsWith("3")),
        ).toBe(true);
        expect(op?.responses?.["500"]).toBeDefined();
      }
      if (/\{\w+/.test(def.route))
        expect(def.spec.params, `${def.name} has path params`).toBeDefined();
    }
  });

  it("when a route answers anyone but an operator, then no documented answer can carry a Grafana password", () => {
    const mentions = (node: unknown): boolean =>
      typeof node === "object" && node !== null
        ? Object.entries(node as Json).some(([k, v]) => /password/i.test(k) || mentions(v))
        : false;
    const withPassword: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths as Json)) {
      for (const [method, op] of Object.entries(ops as Json)) {
        const o = op as Json;
        if (o["x-caller"] !== "admin" && mentions(o.responses))
          withPassword.push(`${method} ${path}`);
      }
    }
    expect(withPassword).toEqual([]);
    // Opening Grafana answers exactly { url }; the break-glass password is an operator route.
    const session = doc.paths["/api/projects/{ref}/grafana/session"]?.post as Json;
    expect(session["x-caller"]).toBe("verified");
    expect(
      Object.keys(session.responses["200"].content["application/json"].schema.properties as Json),
    ).toEqual(["url"]);
    expect(doc.paths["/api/projects/{ref}/grafana/password"]).toBeUndefined();
    expect(doc.paths["/api/ops/instances/{org}/{ref}/grafana-password"]?.post?.["x-caller"]).toBe(
      "admin",
    );
  });

  it("when a route name or path would clash with the Functions host's own routes, then the test fails", () => {
    for (const def of allDefinitions) {
      expect(def.name.toLowerCase().startsWith("admin"), def.name).toBe(false);
      if (def.kind === "http")
        expect(/^(admin|runtime)(\/|$)/i.test(def.route), def.route).toBe(false);
    }
  });

  it("when any documented input is missing or invalid, then the route answers the documented 400 error shape", async () => {
    let probes = 0;
    for (const [path, item] of Object.entries(doc.paths as Json)) {
      for (const [method, op] of Object.entries(item as Json) as Array<[string, Json]>) {
        const documented400 = op.responses?.["400"];
        const params = (op.parameters ?? []) as Json[];
        const body = op.requestBody?.content?.["application/json"]?.schema as Json | undefined;
        const cases: Array<{ label: string; url: string; body?: unknown }> = [];
        for (const p of params.filter(
          (x) => x.in === "path" && (x.schema?.pattern || x.schema?.enum),
        )) {
          cases.push({
            label: `path ${p.name}`,
            url: fillPath(path, [p.name as string, "NOT-VALID!"]),
          });
        }
        const query = params.filter((x) => x.in === "query");
        const requiredQuery = query.filter((x) => x.required);
        if (requiredQuery.length) cases.push({ label: "missing query", url: fillPath(path) });
        for (const q of query) {
          const bad = invalidValue(q.schema as Json);
          if (typeof bad !== "string") continue;
          const others = requiredQuery
            .filter((r) => r.name !== q.name)
            .map((r) => `${r.name as string}=x`);
          cases.push({
            label: `query ${q.name}`,
            url: `${fillPath(path)}?${[...others, `${q.name as string}=${encodeURIComponent(bad)}`].join("&")}`,
          });
        }
        if (body && body.type === "object") {
          const required = (body.required ?? []) as string[];
          if (required.length)
            cases.push({ label: "missing body field", url: fillPath(path), body: {} });
          for (const [name, schema] of Object.entries((body.properties ?? {}) as Json)) {
            cases.push({
              label: `body ${name}`,
              url: fillPath(path),
              body: { [name]: invalidValue(schema as Json) },
            });
          }
          cases.push({ label: "body not an object", url: fillPath(path), body: "[1,2" });
        }
        if (cases.length === 0) continue;
        expect(documented400, `${method} ${path} documents 400`).toBeDefined();
        for (const c of cases) {
          const res = await client.request(method.toUpperCase(), c.url, {
            headers: { "x-ops-actor": "contract-test" },
            ...(c.body === undefined ? {} : { body: c.body }),
          });
          probes++;
          expect(res.status, `${method} ${path} (${c.label}): ${res.text}`).toBe(400);
          expect(typeof res.body?.error?.code, `${method} ${path} (${c.label})`).toBe("string");
          expect(typeof res.body?.error?.message).toBe("string");
        }
      }
    }
    expect(probes).toBeGreaterThan(5);
  });
});
