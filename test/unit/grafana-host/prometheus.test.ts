import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";

import {
  HOST_PATHS,
  PROMETHEUS_KEY_FILE,
  renderCloudInit,
  renderPrometheusConfig,
} from "../../../lib/grafana-host/index.js";
import { promtoolCheckConfig, promtoolVersion } from "../../helpers/system-tools.js";
import { REF, SECRETS, fileContent, hostInput, parseCloudConfig } from "./helpers.js";

interface ScrapeConfig {
  job_name: string;
  scheme: string;
  metrics_path: string;
  params: Record<string, string[]>;
  fallback_scrape_protocol?: string;
  basic_auth: { username: string; password_file: string; password?: string };
  static_configs: { targets: string[] }[];
}

interface PromConfig {
  global: { scrape_interval: string };
  scrape_configs: ScrapeConfig[];
}

/**
 * Prepares a rendered prometheus.yml for the local promtool: points the key file at a dummy in
 * `dir`, and drops the one Prometheus 3 setting an older promtool (Debian 12 ships 2.42) does not
 * know yet.
 */
function forLocalPromtool(text: string, dir: string): string {
  const doc = parse(text) as PromConfig;
  const keyFile = join(dir, "service-key");
  writeFileSync(keyFile, "dummy-key", { mode: 0o600 });
  for (const job of doc.scrape_configs) {
    job.basic_auth.password_file = keyFile;
    if (promtoolVersion().major < 3) {
      expect(job.fallback_scrape_protocol).toBe("PrometheusText0.0.4");
      delete job.fallback_scrape_protocol;
    }
  }
  return stringify(doc);
}

describe("renderPrometheusConfig", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "supafana-prom-"));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("scrapes the project's metrics endpoint every 60s with basic auth from a key file", () => {
    const doc = parse(renderPrometheusConfig(REF)) as PromConfig;
    expect(doc.global.scrape_interval).toBe("60s");
    expect(doc.scrape_configs).toHaveLength(1);
    const job = doc.scrape_configs[0];
    expect(job).toMatchObject({
      job_name: `supabase-${REF}`,
      scheme: "https",
      metrics_path: "/customer/v1/privileged/metrics",
      basic_auth: { username: "service_role", password_file: PROMETHEUS_KEY_FILE },
      static_configs: [{ targets: [`${REF}.supabase.co`] }],
    });
    expect(job?.basic_auth.password).toBeUndefined();
  });

  it("when the config is taken from the rendered cloud-init, then promtool check config accepts it", () => {
    const cloud = parseCloudConfig(renderCloudInit(hostInput()));
    const text = fileContent(cloud, HOST_PATHS.prometheusConfig);
    expect(text).toBe(renderPrometheusConfig(REF));
    expect(text).not.toContain(SECRETS.serviceRoleKey);
    writeFileSync(join(dir, "prometheus.yml"), forLocalPromtool(text, dir));
    const result = promtoolCheckConfig(dir);
    expect(result.output).toContain("SUCCESS");
    expect(result.ok).toBe(true);
  });

  it("when the config is broken on purpose, then promtool rejects it", () => {
    writeFileSync(
      join(dir, "prometheus.yml"),
      forLocalPromtool(renderPrometheusConfig(REF), dir).replace("scheme: https", "scheme: gopher"),
    );
    expect(promtoolCheckConfig(dir).ok).toBe(false);
  });

  it("when the ref is invalid, then it throws", () => {
    expect(() => renderPrometheusConfig("abc\n- job_name: x")).toThrow();
  });
});
