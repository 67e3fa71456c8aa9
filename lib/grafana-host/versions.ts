/**
 * Pinned versions of everything the Grafana host downloads at boot. Bumping one of these changes
 * the rendered cloud-init, so only newly created VMs pick it up.
 */

/**
 * Prometheus 3.13.1 (July 2026), the 3.13 line. Official image from the Prometheus project.
 * The config we render avoids anything 3.x removed, and sets `fallback_scrape_protocol` because
 * Prometheus 3 refuses scrapes whose Content-Type is missing or unknown.
 */
export const PROMETHEUS_IMAGE = "prom/prometheus:v3.13.1";

/**
 * Grafana OSS 13.1.1 (July 2026). Grafana Labs stopped publishing `grafana/grafana-oss` with
 * 12.4.0; the OSS edition now ships as `grafana/grafana`.
 */
export const GRAFANA_IMAGE = "grafana/grafana:13.1.1";

/**
 * The "Supabase Project" dashboard from supabase/supabase-grafana, pinned to one commit so every
 * host gets the same file. It uses datasource uid `prometheus`, which our provisioning matches.
 */
export const SUPABASE_DASHBOARD_COMMIT = "0802e8eaaff28350627eecdb38ab76a5b4e93116";
export const SUPABASE_DASHBOARD_URL = `https://raw.githubusercontent.com/supabase/supabase-grafana/${SUPABASE_DASHBOARD_COMMIT}/grafana/dashboard.json`;

/** Fixed uid of the provisioned Prometheus datasource; the Supabase dashboard refers to it. */
export const PROMETHEUS_DATASOURCE_UID = "prometheus";

const tagOf = (image: string) => image.slice(image.lastIndexOf(":") + 1);

/** The version segment of a template spec version id (`…/templateSpecs/<name>/versions/<v>`). */
export function templateSpecVersionOf(templateSpecId: string): string {
  return /\/versions\/([^/]+)$/i.exec(templateSpecId)?.[1] ?? templateSpecId;
}

/** The same template spec at another version. */
export function withTemplateSpecVersion(templateSpecId: string, version: string): string {
  return templateSpecId.replace(/\/versions\/[^/]+$/i, `/versions/${version}`);
}

/**
 * What a Grafana host runs, as one comparable string: the template spec version it was deployed
 * from and the pinned images cloud-init starts. An instance whose `hostVersion` differs from the
 * rollout's target is upgraded.
 */
export function hostVersionOf(templateSpecId: string): string {
  return `${templateSpecVersionOf(templateSpecId)}+grafana-${tagOf(GRAFANA_IMAGE)}+prometheus-${tagOf(PROMETHEUS_IMAGE)}`;
}
