/**
 * Reads a Grafana alerting provisioning document (what a host was given) back into the
 * equivalent Prometheus rules file, so the real `promtool check rules` / `promtool test rules`
 * can judge exactly what was pushed: each active (not paused) rule's query A, compared by the
 * threshold expression B its condition names, for its `for`.
 */
import { parse, stringify } from "yaml";

export interface ProvisionedRule {
  uid: string;
  title: string;
  condition: string;
  for: string;
  isPaused: boolean;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  data: Array<{
    refId: string;
    model: {
      expr?: string;
      type?: string;
      expression?: string;
      conditions?: Array<{ evaluator: { type: string; params: number[] } }>;
    };
  }>;
}

export interface ProvisionedAlerting {
  apiVersion: number;
  groups: Array<{ name: string; folder: string; interval: string; rules: ProvisionedRule[] }>;
  contactPoints?: Array<{
    name: string;
    receivers: Array<{ uid: string; type: string; settings: { addresses: string } }>;
  }>;
  policies?: Array<{ receiver: string }>;
  resetPolicies?: number[];
  deleteContactPoints?: Array<{ uid: string }>;
}

export const parseAlerting = (document: string): ProvisionedAlerting =>
  parse(document) as ProvisionedAlerting;

export function ruleByUid(doc: ProvisionedAlerting, uid: string): ProvisionedRule {
  const rule = doc.groups.flatMap((g) => g.rules).find((r) => r.uid === uid);
  if (!rule) throw new Error(`no rule ${uid}`);
  return rule;
}

/** The comparison of a rule: `(<expr of A>) > <threshold>`; throws if the condition is dangling. */
export function ruleExpression(rule: ProvisionedRule): string {
  const condition = rule.data.find((d) => d.refId === rule.condition);
  if (!condition) throw new Error(`rule ${rule.uid}: condition ${rule.condition} is not defined`);
  const input = rule.data.find((d) => d.refId === condition.model.expression);
  const evaluator = condition.model.conditions?.[0]?.evaluator;
  if (!input?.model.expr || !evaluator) throw new Error(`rule ${rule.uid}: not a threshold rule`);
  const op = evaluator.type === "gt" ? ">" : evaluator.type === "lt" ? "<" : undefined;
  if (!op) throw new Error(`rule ${rule.uid}: unexpected evaluator ${evaluator.type}`);
  return `(${input.model.expr}) ${op} ${evaluator.params[0]}`;
}

/** The active rules as a Prometheus rules file, alert names = rule uids. */
export function prometheusRulesFromAlerting(document: string): string {
  const doc = parseAlerting(document);
  return stringify({
    groups: doc.groups.map((g) => ({
      name: g.name,
      interval: g.interval,
      rules: g.rules
        .filter((r) => !r.isPaused)
        .map((r) => ({
          alert: r.uid,
          expr: ruleExpression(r),
          for: r.for,
          labels: { severity: r.labels.severity },
          annotations: {
            summary: r.annotations.summary,
            description: (r.annotations.description ?? "").replaceAll("$values.A.Value", "$value"),
          },
        })),
    })),
  });
}
