import { z } from "zod";

import { defineHttp, type FunctionDefinition } from "../lib/functions.js";
import { checkHealth } from "../lib/health.js";
import { json } from "../lib/http.js";

const dependency = z.object({
  status: z.enum(["ok", "failing"]),
  latencyMs: z.number(),
  error: z.string().optional(),
});
const healthSchema = z.object({
  status: z.enum(["ok", "degraded"]),
  checks: z.object({ storage: dependency, serviceBus: dependency }),
});

export const definitions: FunctionDefinition[] = [
  defineHttp({
    name: "health",
    route: "health",
    methods: ["GET"],
    caller: "anyone",
    summary: "Liveness and dependency checks (storage, Service Bus).",
    tags: ["platform"],
    responses: {
      200: { description: "Every dependency answers.", schema: healthSchema },
      503: { description: "A dependency is failing; the body names it.", schema: healthSchema },
    },
    errors: [],
    handler: async ({ services }) => {
      const report = await checkHealth(services);
      return json(report.status === "ok" ? 200 : 503, report);
    },
  }),
];
