import { z } from "zod";

import { defineHttp, type FunctionDefinition } from "../lib/functions.js";
import { ok } from "../lib/http.js";

/** Built lazily from the definitions list (which includes this file), once per process. */
export function openApiDefinitions(all: () => readonly FunctionDefinition[]): FunctionDefinition[] {
  let doc: Record<string, unknown> | undefined;
  return [
    defineHttp({
      name: "openapi",
      route: "openapi.json",
      methods: ["GET"],
      caller: "anyone",
      summary: "This API's OpenAPI 3.1 document.",
      tags: ["platform"],
      responses: {
        200: { description: "The OpenAPI document.", schema: z.record(z.string(), z.unknown()) },
      },
      errors: [],
      handler: async ({ services }) => {
        if (!doc) {
          const { buildOpenApi } = await import("../lib/openapi.js");
          doc = buildOpenApi(all(), services.config.PUBLIC_BASE_URL);
        }
        return ok(doc, { "cache-control": "public, max-age=300" });
      },
    }),
  ];
}
