/** The org's projects with their Grafana instances. */
import { z } from "zod";

import { defineHttp, type FunctionDefinition } from "../lib/functions.js";
import { ok } from "../lib/http.js";
import { instanceViewSchema } from "../lib/instances/view.js";
import { listOrgProjects } from "../lib/projects.js";

const projectListSchema = z.object({
  projects: z.array(
    z.object({
      ref: z.string(),
      name: z.string(),
      region: z.string(),
      status: z.string().describe("Supabase's project status, e.g. ACTIVE_HEALTHY, INACTIVE"),
      instance: instanceViewSchema.nullable(),
    }),
  ),
});

export const definitions: FunctionDefinition[] = [
  defineHttp({
    name: "projectsList",
    route: "projects",
    methods: ["GET"],
    caller: "session",
    summary: "Every project of the organization, with its Grafana instance if any.",
    tags: ["projects"],
    responses: { 200: { description: "The projects.", schema: projectListSchema } },
    errors: [401, 502, 503],
    handler: async ({ services, caller: session }) => {
      return ok({ projects: await listOrgProjects(services, session.org) });
    },
  }),
];
