/**
 * What the API shows of an instance: never the password, keys or Azure internals. Separate from
 * persistence (`./store.ts`): the row may grow without the API changing.
 */
import { z } from "zod";

import { INSTANCE_STATES, OPERATIONS, POSITIONS, type Position } from "./lifecycle.js";
import { KEY_KINDS, PLANS, type Instance } from "./model.js";

/** What the API tells a user whose instance scrapes with the shared legacy key. */
export const LEGACY_KEY_HINT =
  "This Grafana scrapes metrics with the project's shared service_role key, because the Supabase connection cannot create API keys (it lacks the secrets:write permission) or the project has no publishable and secret keys yet. Reconnect Supafana with that permission, or enable the new API keys in the Supabase dashboard, then reprovision to get a dedicated, revocable key.";

/** What the API shows of an instance: never the password or Azure internals. */
export const instanceViewSchema = z.object({
  ref: z.string(),
  state: z.enum(INSTANCE_STATES),
  operation: z.enum(OPERATIONS),
  step: z.enum(POSITIONS as [Position, ...Position[]]),
  plan: z.enum(PLANS),
  url: z.string().nullable(),
  trialEndsAt: z.string().nullable(),
  lastError: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
  readyAt: z.string().nullable(),
  keyKind: z
    .enum(KEY_KINDS)
    .nullable()
    .describe(
      "The key the host scrapes Supabase metrics with: its own revocable secret key, or the project's shared legacy key.",
    ),
  keyHint: z.string().nullable().describe("Why the key is `legacy` and how to change it."),
  hostVersion: z
    .string()
    .nullable()
    .describe("The Grafana host version the instance runs (template spec version and images)."),
  healedAt: z
    .string()
    .nullable()
    .describe("When the host was last replaced automatically because it stopped answering."),
});
export type InstanceView = z.infer<typeof instanceViewSchema>;

export function toView(i: Instance): InstanceView {
  return {
    ref: i.ref,
    state: i.state,
    operation: i.operation,
    step: i.step,
    plan: i.plan,
    url: i.state === "Running" ? (i.url ?? null) : null,
    trialEndsAt: i.trialEndsAt?.toISOString() ?? null,
    lastError: i.lastError ?? null,
    createdAt: i.createdAt.toISOString(),
    updatedAt: i.updatedAt.toISOString(),
    readyAt: i.readyAt?.toISOString() ?? null,
    keyKind: i.keyKind ?? null,
    keyHint: i.keyKind === "legacy" ? LEGACY_KEY_HINT : null,
    hostVersion: i.hostVersion ?? null,
    healedAt: i.healedAt?.toISOString() ?? null,
  };
}
