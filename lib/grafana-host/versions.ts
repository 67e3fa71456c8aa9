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
