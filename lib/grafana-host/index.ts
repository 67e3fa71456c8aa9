export type { GrafanaHostInput, SmtpSettings } from "./types.js";
export { GrafanaHostInputError } from "./types.js";
export {
  renderCloudInit,
  DATA_LABEL,
  DATA_MOUNT,
  HOST_PATHS,
  UNITS,
  GRAFANA_UID,
  PROMETHEUS_UID,
} from "./cloud-init.js";
export {
  renderPrometheusConfig,
  prometheusJobName,
  PROMETHEUS_KEY_FILE,
  SUPABASE_METRICS_PATH,
  type PrometheusConfigOptions,
} from "./prometheus.js";
export {
  renderAlertRules,
  renderPrometheusRules,
  defaultAlertDefinitions,
  alertExpression,
  ALERT_FOLDER,
  EMAIL_CONTACT_POINT,
  type AlertDefinition,
  type AlertInput,
  type AlertSeverity,
} from "./alerts.js";
export { GRAFANA_PORT, GRAFANA_HEALTH_PATH } from "./grafana.js";
export {
  GRAFANA_IMAGE,
  PROMETHEUS_IMAGE,
  SUPABASE_DASHBOARD_URL,
  SUPABASE_DASHBOARD_COMMIT,
  PROMETHEUS_DATASOURCE_UID,
} from "./versions.js";
