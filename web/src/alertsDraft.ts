/**
 * The Alerts screen's edits, kept apart from what the server says: a draft holds only what the
 * person changed (number inputs as typed), so a poll that brings new server data never undoes an
 * edit, and Save sends only the differences.
 */
// The shapes of `./api/alerts` this needs, declared here so that this module has no imports
// (the unit tests load it under Node's module resolution).
interface AlertParam {
  name: string;
  label: string;
  unit: string;
  value: number;
  min: number;
  max: number;
  step: number;
}
interface Alert {
  id: string;
  enabled: boolean;
  params: readonly AlertParam[];
}
interface AlertPatch {
  alerts: Record<string, { enabled?: boolean; params?: Record<string, number> }>;
}
interface ConfigVersion {
  desired: number;
  applied: number | null;
}

export interface AlertEdit {
  enabled?: boolean;
  /** Input text by parameter name. */
  params?: Record<string, string>;
}
export type AlertDraft = Record<string, AlertEdit>;

/** The key of a parameter's field (and its error) in a draft. */
export const fieldKey = (alertId: string, param: string): string => `${alertId}.${param}`;

export const enabledOf = (alert: Alert, draft: AlertDraft): boolean =>
  draft[alert.id]?.enabled ?? alert.enabled;

export const inputOf = (alert: Alert, param: AlertParam, draft: AlertDraft): string =>
  draft[alert.id]?.params?.[param.name] ?? String(param.value);

/** A draft with one more edit. */
export function edit(
  draft: AlertDraft,
  alertId: string,
  change: { enabled: boolean } | { param: string; input: string },
): AlertDraft {
  const prev = draft[alertId] ?? {};
  const next: AlertEdit =
    "enabled" in change
      ? { ...prev, enabled: change.enabled }
      : { ...prev, params: { ...prev.params, [change.param]: change.input } };
  return { ...draft, [alertId]: next };
}

/** "80%", "5 minutes", "1 minute", "3". */
export function withUnit(n: number, unit: string): string {
  if (!unit) return String(n);
  if (unit === "%") return `${n}%`;
  // The API gives units in the plural ("minutes"): one of them reads in the singular.
  const word = n === 1 && unit.length > 2 && unit.endsWith("s") ? unit.slice(0, -1) : unit;
  return `${n} ${word}`;
}

/** "Between 50% and 99%." */
export const rangeText = (p: AlertParam): string =>
  `Between ${withUnit(p.min, p.unit)} and ${withUnit(p.max, p.unit)}.`;

/** What is wrong with a typed value (undefined when it is one the API accepts). */
export function paramError(p: AlertParam, input: string): string | undefined {
  const text = input.trim();
  const n = text === "" ? NaN : Number(text);
  if (!Number.isFinite(n)) return `Enter a number for “${p.label}”.`;
  if (n < p.min || n > p.max)
    return `“${p.label}” must be between ${withUnit(p.min, p.unit)} and ${withUnit(p.max, p.unit)}.`;
  if (p.step > 0) {
    const steps = (n - p.min) / p.step;
    if (Math.abs(steps - Math.round(steps)) > 1e-9)
      return `“${p.label}” goes in steps of ${withUnit(p.step, p.unit)} from ${withUnit(p.min, p.unit)}.`;
  }
  return undefined;
}

export interface Prepared {
  /** Only what differs from the server's values; empty `alerts` when nothing does. */
  patch: AlertPatch;
  /** Messages by `fieldKey`, for the fields that cannot be sent. */
  errors: Record<string, string>;
}

/** The PATCH body for a draft over the server's alerts, or why it cannot be sent. */
export function prepare(alerts: readonly Alert[], draft: AlertDraft): Prepared {
  const patch: AlertPatch = { alerts: {} };
  const errors: Record<string, string> = {};
  for (const alert of alerts) {
    const e = draft[alert.id];
    if (!e) continue;
    const change: AlertPatch["alerts"][string] = {};
    if (e.enabled !== undefined && e.enabled !== alert.enabled) change.enabled = e.enabled;
    for (const p of alert.params) {
      const input = e.params?.[p.name];
      if (input === undefined) continue;
      const error = paramError(p, input);
      if (error) {
        errors[fieldKey(alert.id, p.name)] = error;
        continue;
      }
      const n = Number(input.trim());
      if (n !== p.value) change.params = { ...change.params, [p.name]: n };
    }
    if (change.enabled !== undefined || change.params) patch.alerts[alert.id] = change;
  }
  return { patch, errors };
}

/** True when the draft would change something (or holds a value that cannot be sent). */
export function isDirty(alerts: readonly Alert[], draft: AlertDraft): boolean {
  const { patch, errors } = prepare(alerts, draft);
  return Object.keys(patch.alerts).length > 0 || Object.keys(errors).length > 0;
}

export type ConfigState = "applied" | "applying";

/** Applied once the host runs the configuration last asked for. */
export const configState = (v: ConfigVersion): ConfigState =>
  v.applied === v.desired ? "applied" : "applying";

/** The newer of two reports of the same project's configuration version. */
export function newerVersion(a: ConfigVersion, b: ConfigVersion): ConfigVersion {
  if (a.desired !== b.desired) return a.desired > b.desired ? a : b;
  return (a.applied ?? -1) >= (b.applied ?? -1) ? a : b;
}

/** The recipient list with the caller added or removed (the one change a non-admin may make). */
export function withSelf(ids: readonly string[], me: string, on: boolean): string[] {
  const rest = ids.filter((id) => id !== me);
  return on ? [...rest, me] : rest;
}
