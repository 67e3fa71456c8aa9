/**
 * prometheus.yml for one project: a single scrape job for the Supabase metrics endpoint,
 * authenticated with HTTP Basic `service_role` + the project's key. The key is read from a file
 * (`password_file`), so it is never part of the config, a command line or the environment.
 */
import { stringify } from "yaml";

import { assertRef } from "./validate.js";

/** Where the key's directory is mounted inside the Prometheus container, and the key file in it. */
export const PROMETHEUS_KEY_DIR = "/etc/prometheus/secrets";
export const PROMETHEUS_KEY_FILE = `${PROMETHEUS_KEY_DIR}/supabase-service-key`;

export const SUPABASE_METRICS_PATH = "/customer/v1/privileged/metrics";

export interface PrometheusConfigOptions {
  /** Path of the file holding the service key; default {@link PROMETHEUS_KEY_FILE}. */
  passwordFile?: string;
}

export function prometheusJobName(ref: string): string {
  return `supabase-${assertRef(ref)}`;
}

export function renderPrometheusConfig(ref: string, options: PrometheusConfigOptions = {}): string {
  const passwordFile = options.passwordFile ?? PROMETHEUS_KEY_FILE;
  if (!/^\/[A-Za-z0-9._\-/]+$/.test(passwordFile))
    throw new Error("passwordFile must be an absolute path");
  const doc = {
    global: {
      scrape_interval: "60s",
      scrape_timeout: "30s",
      evaluation_interval: "60s",
    },
    scrape_configs: [
      {
        job_name: prometheusJobName(ref),
        scheme: "https",
        metrics_path: SUPABASE_METRICS_PATH,
        // Asks the endpoint for the metric set the Supabase dashboard is built on.
        params: { supabase_grafana: ["true"] },
        // Prometheus 3 fails a scrape whose Content-Type is blank or unknown unless a fallback
        // is named; the endpoint serves the classic text format.
        fallback_scrape_protocol: "PrometheusText0.0.4",
        basic_auth: { username: "service_role", password_file: passwordFile },
        static_configs: [{ targets: [`${ref}.supabase.co`] }],
      },
    ],
  };
  return stringify(doc, { lineWidth: 0 });
}
