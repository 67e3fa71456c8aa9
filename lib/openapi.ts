/**
 * The OpenAPI 3.1 document, generated from the same zod schemas that validate each route's input
 * and describe its output (one source of truth).
 */
import { z } from "zod";

import type { FunctionDefinition, HttpDefinition, HttpRouteInfo } from "./functions.js";
import { errorBodySchema } from "./http.js";

type JsonSchema = Record<string, unknown>;

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: "The request is malformed or fails validation.",
  401: "No valid session (or function key).",
  402: "The organization is not entitled to this (trial used, no active subscription).",
  403: "Not allowed: foreign Origin, another organization's resource, or an unverified user.",
  404: "No such resource.",
  405: "Method not allowed.",
  409: "Conflicts with the current state.",
  413: "The request body is too large.",
  429: "Too many requests; see Retry-After.",
  502: "An upstream service (Supabase, Stripe, Azure) failed.",
  503: "Temporarily unavailable.",
};

function schemaOf(schema: z.ZodType, io: "input" | "output"): JsonSchema {
  const out = z.toJSONSchema(schema, {
    target: "draft-2020-12",
    io,
    unrepresentable: "any",
  }) as JsonSchema;
  delete out.$schema;
  return out;
}

function parametersOf(spec: HttpRouteInfo, where: "path" | "query"): unknown[] {
  const schema = where === "path" ? spec.params : spec.query;
  if (!schema) return [];
  const json = schemaOf(schema, "input");
  const props = (json.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((json.required ?? []) as string[]);
  return Object.entries(props).map(([name, s]) => ({
    name,
    in: where,
    required: where === "path" ? true : required.has(name),
    ...(typeof s.description === "string" ? { description: s.description } : {}),
    schema: s,
  }));
}

const SECURITY: Record<HttpRouteInfo["caller"], Array<Record<string, string[]>>> = {
  anyone: [],
  session: [{ session: [] }],
  verified: [{ session: [] }],
  admin: [{ functionKey: [] }],
  stripe: [{ stripeSignature: [] }],
};

function operation(def: HttpDefinition, method: string): Record<string, unknown> {
  const spec = def.spec;
  const responses: Record<string, unknown> = {};
  for (const [status, r] of Object.entries(spec.responses)) {
    responses[status] = {
      description: r.description,
      ...(r.schema
        ? {
            content: {
              [r.contentType ?? "application/json"]: { schema: schemaOf(r.schema, "output") },
            },
          }
        : r.contentType
          ? { content: { [r.contentType]: {} } }
          : {}),
    };
  }
  const errors = new Set(spec.errors);
  if (spec.params || spec.query || spec.body) errors.add(400);
  if (spec.body) errors.add(413);
  if (method !== "get" && (spec.checkOrigin ?? true)) errors.add(403);
  for (const status of [...errors].sort()) {
    responses[String(status)] ??= {
      description: [ERROR_DESCRIPTIONS[status] ?? "Error.", spec.errorNotes?.[status]]
        .filter(Boolean)
        .join(" "),
      content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
    };
  }
  responses["500"] = {
    description: "Unexpected failure; the message carries a reference to the logs.",
    content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
  };
  return {
    operationId: spec.methods.length > 1 ? `${spec.name}_${method}` : spec.name,
    summary: spec.summary,
    tags: spec.tags,
    "x-caller": spec.caller,
    security: SECURITY[spec.caller],
    parameters: [...parametersOf(spec, "path"), ...parametersOf(spec, "query")],
    ...(spec.body
      ? {
          requestBody: {
            required: true,
            content: {
              "application/json": {
                schema: schemaOf(spec.body, "input"),
              },
            },
          },
        }
      : {}),
    responses,
  };
}

export function buildOpenApi(
  definitions: readonly FunctionDefinition[],
  serverUrl: string,
): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const http = definitions.filter((d): d is HttpDefinition => d.kind === "http");
  for (const def of [...http].sort((a, b) => a.route.localeCompare(b.route))) {
    const path = `/api/${def.route}`.replace(/\{(\w+)(:\w+)?\??\}/g, "{$1}");
    const item = (paths[path] ??= {});
    for (const m of def.methods) item[m.toLowerCase()] = operation(def, m.toLowerCase());
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Supafana API",
      version: "1.0.0",
      description:
        "Grafana + Prometheus for Supabase projects. Every error answers `{ error: { code, message } }`. " +
        "State-changing requests must carry an Origin equal to the app's public origin.",
    },
    servers: [{ url: serverUrl }],
    paths,
    components: {
      schemas: { Error: schemaOf(errorBodySchema, "output") },
      securitySchemes: {
        session: { type: "apiKey", in: "cookie", name: "__Host-supafana_session" },
        functionKey: { type: "apiKey", in: "header", name: "x-functions-key" },
        stripeSignature: { type: "apiKey", in: "header", name: "Stripe-Signature" },
      },
    },
  };
}
