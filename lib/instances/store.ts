/**
 * The `instances` table: one row per (org, project ref), the single source of truth for a
 * project's Grafana. Every write that decides something is etag-conditional; a lost race
 * surfaces as `isConflict(err)` and the caller re-reads.
 *
 * The `projectRefs` table (PK = ref) guards that a project ref belongs to one org only and
 * remembers that a project has used its one trial, even after its instance is deleted.
 */
import { odata, type TableEntityResult } from "@azure/data-tables";
import { z } from "zod";

import type { Services } from "../services.js";
import { getEntity } from "../storage/tables.js";

export const INSTANCE_STATES = [
  "Requested",
  "Deploying",
  "Configuring",
  "Verifying",
  "Running",
  "Deleting",
  "Deleted",
  "Failed",
] as const;
export type InstanceState = (typeof INSTANCE_STATES)[number];
export const PLANS = ["trial", "paid", "free"] as const;
export type Plan = (typeof PLANS)[number];
export type Operation = "provision" | "deprovision";
export const KEY_KINDS = ["dedicated", "legacy"] as const;
export type KeyKind = (typeof KEY_KINDS)[number];

/** What the API tells a user whose instance scrapes with the shared legacy key. */
export const LEGACY_KEY_HINT =
  "This Grafana scrapes metrics with the project's shared service_role key, because the Supabase connection cannot create API keys (it lacks the secrets:write permission) or the project has no publishable and secret keys yet. Reconnect Supafana with that permission, or enable the new API keys in the Supabase dashboard, then reprovision to get a dedicated, revocable key.";

export interface Instance {
  org: string;
  ref: string;
  state: InstanceState;
  /** The current operation; messages of any other operation are stale and ignored. */
  operationId: string;
  operation: Operation;
  /** The step of the current operation and how many times it has been attempted. */
  step: string;
  attempts: number;
  operationStartedAt: Date;
  plan: Plan;
  trialEndsAt?: Date | undefined;
  projectName?: string | undefined;
  vmName?: string | undefined;
  deploymentName?: string | undefined;
  deploymentId?: string | undefined;
  /**
   * The operation whose deployment PUT is about to be sent or in flight, and when that was
   * recorded (written etag-conditionally before the PUT, cleared once the PUT has returned).
   */
  deploymentRequestOperationId?: string | undefined;
  deploymentRequestedAt?: Date | undefined;
  privateIp?: string | undefined;
  url?: string | undefined;
  /** Grafana admin password, encrypted (see lib/secrets.ts). */
  passwordSecret?: string | undefined;
  /** Who asked for the current operation (user id), for the "ready" e-mail. */
  requestedBy?: string | undefined;
  lastError?: string | undefined;
  /** Transient failures of the current operation (its retry budget). */
  failures?: number | undefined;
  /** When the message that drives the current step is due (stuck-operation detection). */
  nextRunAt?: Date | undefined;
  /** Why the current operation runs: "requested", "retry", "trial_ended", "payment_lapsed", … */
  operationReason?: string | undefined;
  /** A new Grafana password being applied (encrypted), until the rotation is confirmed. */
  pendingPasswordSecret?: string | undefined;
  /**
   * The id (never the value) of the project secret key minted for this instance's Prometheus,
   * and which kind of key the host scrapes with: `dedicated` (its own, revocable) or `legacy`
   * (the project's shared service-role key, when the grant cannot mint keys).
   */
  keyId?: string | undefined;
  keyKind?: KeyKind | undefined;
  /** When the dedicated key was last minted (deploy or rotation). */
  keyRotatedAt?: Date | undefined;
  /** The id of a key being rotated in, until the host has confirmed it. */
  pendingKeyId?: string | undefined;
  /** When the "trial ending" reminder was sent for the current trial. */
  trialReminderSentAt?: Date | undefined;
  createdAt: Date;
  updatedAt: Date;
  readyAt?: Date | undefined;
  /** Optimistic concurrency tag of the row this was read from. */
  etag?: string | undefined;
}

interface InstanceEntity extends Omit<Instance, "org" | "ref" | "etag"> {
  partitionKey: string;
  rowKey: string;
}

function fromEntity(e: TableEntityResult<InstanceEntity>): Instance {
  const {
    partitionKey,
    rowKey,
    etag,
    timestamp: _ts,
    ...rest
  } = e as TableEntityResult<InstanceEntity> & {
    timestamp?: string;
  };
  const clean = Object.fromEntries(
    Object.entries(rest as Record<string, unknown>).filter(
      ([k, v]) => !k.startsWith("odata") && v !== null,
    ),
  ) as Omit<Instance, "org" | "ref">;
  return { ...clean, org: partitionKey, ref: rowKey, etag };
}

function toEntity(i: Instance): InstanceEntity {
  const { org, ref, etag: _etag, ...rest } = i;
  const clean = Object.fromEntries(
    Object.entries(rest as Record<string, unknown>).filter(([, v]) => v !== undefined),
  );
  return {
    ...(clean as Omit<InstanceEntity, "partitionKey" | "rowKey">),
    partitionKey: org,
    rowKey: ref,
  };
}

export async function getInstance(
  services: Services,
  org: string,
  ref: string,
): Promise<Instance | undefined> {
  const e = await getEntity<InstanceEntity>(services.tables.client("instances"), org, ref);
  return e ? fromEntity(e) : undefined;
}

/** Creates the row; fails with 409 (isConflict) if it exists. */
export async function createInstance(services: Services, instance: Instance): Promise<Instance> {
  const res = await services.tables.client("instances").createEntity(toEntity(instance));
  return { ...instance, etag: res.etag };
}

/**
 * Replaces the row if it still has `instance.etag` (412 otherwise: someone else moved it).
 * Returns the instance with its new etag.
 */
export async function saveInstance(services: Services, instance: Instance): Promise<Instance> {
  if (!instance.etag) throw new Error("saveInstance needs the etag the instance was read with");
  const res = await services.tables
    .client("instances")
    .updateEntity(toEntity(instance), "Replace", { etag: instance.etag });
  return { ...instance, etag: res.etag };
}

export async function listInstances(services: Services, org: string): Promise<Instance[]> {
  const out: Instance[] = [];
  const iter = services.tables
    .client("instances")
    .listEntities<InstanceEntity>({ queryOptions: { filter: odata`PartitionKey eq ${org}` } });
  for await (const e of iter) out.push(fromEntity(e));
  return out;
}

/** Every instance across orgs, optionally only some states (reconciler, gateway, operators). */
export async function listAllInstances(
  services: Services,
  states?: readonly InstanceState[],
): Promise<Instance[]> {
  const filter = states?.length ? states.map((s) => odata`state eq ${s}`).join(" or ") : undefined;
  const out: Instance[] = [];
  const iter = services.tables
    .client("instances")
    .listEntities<InstanceEntity>(filter ? { queryOptions: { filter } } : {});
  for await (const e of iter) out.push(fromEntity(e));
  return out;
}

/** What the API shows of an instance: never the password or Azure internals. */
export const instanceViewSchema = z.object({
  ref: z.string(),
  state: z.enum(INSTANCE_STATES),
  operation: z.enum(["provision", "deprovision"]),
  step: z.string(),
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
  };
}

/** The owner of a project ref across orgs and the trial it has used. */
export interface ProjectRefRecord {
  ref: string;
  org: string;
  trialStartedAt?: Date | undefined;
  trialEndsAt?: Date | undefined;
  etag?: string | undefined;
}

export async function getProjectRef(
  services: Services,
  ref: string,
): Promise<ProjectRefRecord | undefined> {
  const e = await getEntity<{ org: string; trialStartedAt?: Date; trialEndsAt?: Date }>(
    services.tables.client("projectRefs"),
    ref,
    "",
  );
  if (!e) return undefined;
  return {
    ref,
    org: e.org,
    trialStartedAt: e.trialStartedAt,
    trialEndsAt: e.trialEndsAt,
    etag: e.etag,
  };
}
