/**
 * The org's projects as the SPA lists them: every Supabase project of the organization (name,
 * region and status from Supabase, cached briefly) with its Grafana instance from the
 * `instances` table, if it has one.
 */
import { listInstances } from "./instances/store.js";
import { toView, type InstanceView } from "./instances/view.js";
import type { Services } from "./services.js";
import { supabaseFor } from "./supabase/client.js";

export interface ProjectListItem {
  ref: string;
  name: string;
  region: string;
  status: string;
  instance: InstanceView | null;
}

export async function listOrgProjects(services: Services, org: string): Promise<ProjectListItem[]> {
  const [projects, instances] = await Promise.all([
    supabaseFor(services, org).listProjects(),
    listInstances(services, org),
  ]);
  const byRef = new Map(instances.map((i) => [i.ref, i]));
  return projects.map((p) => {
    const instance = byRef.get(p.ref);
    return {
      ref: p.ref,
      name: p.name,
      region: p.region,
      status: p.status,
      instance: instance ? toView(instance) : null,
    };
  });
}
