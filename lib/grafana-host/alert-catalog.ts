/**
 * The default alerts a project's Grafana gets, as a catalog: a stable id per alert, whether it is
 * on, and its adjustable parameters with their validated ranges. The API shows and edits these;
 * the renderers (`alerts.ts`) turn one resolved {@link AlertSettings} into the Grafana alerting
 * provisioning, at first boot (cloud-init) and on every later push alike.
 */
import { GrafanaHostInputError } from "./types.js";

export interface AlertParamSpec {
  name: string;
  label: string;
  unit: string;
  default: number;
  min: number;
  max: number;
  step: number;
}

export interface AlertCatalogEntry {
  id: string;
  title: string;
  description: string;
  defaultEnabled: boolean;
  params: readonly AlertParamSpec[];
}

const forMinutes = (value: number): AlertParamSpec => ({
  name: "for",
  label: "For at least",
  unit: "minutes",
  default: value,
  min: 1,
  max: 60,
  step: 1,
});

export const ALERT_CATALOG: readonly AlertCatalogEntry[] = [
  {
    id: "high-cpu",
    title: "High CPU usage",
    description:
      "CPU busy share of the database server across all cores. Sustained saturation slows every query.",
    defaultEnabled: true,
    params: [
      {
        name: "threshold",
        label: "CPU usage above",
        unit: "%",
        default: 85,
        min: 50,
        max: 99,
        step: 1,
      },
      forMinutes(10),
    ],
  },
  {
    id: "low-memory",
    title: "Low available memory",
    description:
      "Memory still available on the database server (not memory used): fires when almost nothing is left, before the kernel starts killing processes.",
    defaultEnabled: true,
    params: [
      {
        name: "threshold",
        label: "Available memory below",
        unit: "%",
        default: 10,
        min: 1,
        max: 50,
        step: 1,
      },
      forMinutes(10),
    ],
  },
  {
    id: "disk-full",
    title: "Disk almost full",
    description:
      "Used space of the root and data filesystems (one alert per mount). A full data disk stops Postgres from writing.",
    defaultEnabled: true,
    params: [
      {
        name: "threshold",
        label: "Disk usage above",
        unit: "%",
        default: 90,
        min: 50,
        max: 99,
        step: 1,
      },
      forMinutes(5),
    ],
  },
  {
    id: "connections",
    title: "Database connections near the limit",
    description:
      "Client connections to Postgres as a share of the connection limit. New connections are refused once the limit is reached.",
    defaultEnabled: true,
    params: [
      {
        name: "threshold",
        label: "Connections above",
        unit: "% of the limit",
        default: 80,
        min: 10,
        max: 100,
        step: 1,
      },
      {
        name: "maxConnections",
        label: "Connection limit",
        unit: "connections",
        default: 60,
        min: 1,
        max: 10000,
        step: 1,
      },
      forMinutes(5),
    ],
  },
  {
    id: "postgres-down",
    title: "Postgres down",
    description:
      "Postgres reports down, or its metrics stopped arriving (project paused, endpoint unreachable, key revoked).",
    defaultEnabled: true,
    params: [forMinutes(5)],
  },
  {
    id: "deadlocks",
    title: "Deadlocks",
    description:
      "Transactions Postgres aborted because they deadlocked, counted over the last 5 minutes.",
    defaultEnabled: true,
    params: [
      {
        name: "threshold",
        label: "Deadlocks in 5 minutes above",
        unit: "deadlocks",
        default: 0,
        min: 0,
        max: 1000,
        step: 1,
      },
      forMinutes(1),
    ],
  },
];

export interface AlertSetting {
  enabled: boolean;
  params: Record<string, number>;
}

/** Every catalog alert, resolved: on or off, every parameter with its value. */
export type AlertSettings = Record<string, AlertSetting>;

/** A partial change (or stored partial state): unknown ids and names are errors. */
export type AlertSettingsPatch = Record<
  string,
  { enabled?: boolean | undefined; params?: Record<string, number> | undefined }
>;

export function catalogEntry(id: string): AlertCatalogEntry | undefined {
  return ALERT_CATALOG.find((e) => e.id === id);
}

/** The settings every new instance starts with. */
export function defaultAlertSettings(overrides: { maxConnections?: number } = {}): AlertSettings {
  const out: AlertSettings = {};
  for (const e of ALERT_CATALOG) {
    out[e.id] = {
      enabled: e.defaultEnabled,
      params: Object.fromEntries(e.params.map((p) => [p.name, p.default])),
    };
  }
  const conn = out.connections;
  if (conn && overrides.maxConnections !== undefined) {
    conn.params.maxConnections = overrides.maxConnections;
  }
  return out;
}

function checkValue(id: string, spec: AlertParamSpec, value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new GrafanaHostInputError(`alert "${id}" parameter "${spec.name}" must be a number`);
  }
  if (value < spec.min || value > spec.max) {
    throw new GrafanaHostInputError(
      `alert "${id}" parameter "${spec.name}" must be between ${spec.min} and ${spec.max} (got ${value})`,
    );
  }
  if (spec.step >= 1 && !Number.isInteger(value)) {
    throw new GrafanaHostInputError(
      `alert "${id}" parameter "${spec.name}" must be a whole number (got ${value})`,
    );
  }
  return value;
}

/**
 * `base` with `patch` applied, validated: an unknown alert id or parameter name, or a value
 * outside its range, throws {@link GrafanaHostInputError} naming it. `base` defaults to the
 * defaults, so a stored partial state resolves the same way.
 */
export function applyAlertPatch(
  patch: AlertSettingsPatch,
  base: AlertSettings = defaultAlertSettings(),
): AlertSettings {
  const out: AlertSettings = structuredClone(base);
  for (const [id, change] of Object.entries(patch)) {
    const entry = catalogEntry(id);
    const current = out[id];
    if (!entry || !current) throw new GrafanaHostInputError(`unknown alert "${id}"`);
    if (change.enabled !== undefined) {
      if (typeof change.enabled !== "boolean")
        throw new GrafanaHostInputError(`alert "${id}" enabled must be true or false`);
      current.enabled = change.enabled;
    }
    for (const [name, value] of Object.entries(change.params ?? {})) {
      const spec = entry.params.find((p) => p.name === name);
      if (!spec) throw new GrafanaHostInputError(`alert "${id}" has no parameter "${name}"`);
      current.params[name] = checkValue(id, spec, value);
    }
  }
  return out;
}

/** Resolves stored or given settings (any subset) against the catalog and its defaults. */
export function resolveAlertSettings(
  input: AlertSettingsPatch | undefined,
  defaults: { maxConnections?: number } = {},
): AlertSettings {
  return applyAlertPatch(input ?? {}, defaultAlertSettings(defaults));
}
