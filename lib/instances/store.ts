/**
 * The `instances` table: one row per (org, project ref), the single source of truth for a
 * project's Grafana (the row's shape: `./model.ts`). This module is the only one that touches
 * the table. Every write that decides something is etag-conditional; a lost race surfaces as
 * `isConflict(err)` and the caller re-reads (or uses `patchInstance`, which does).
 */
import { odata, type TableEntityResult } from "@azure/data-tables";

import type { InstanceState } from "./lifecycle.js";
import type { Instance } from "./model.js";
import type { Services } from "../services.js";
import { getEntity, isConflict, retryOnConflict } from "../storage/tables.js";

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

/**
 * Applies `decide(current)` to the current row, etag-conditionally, re-reading on a lost race.
 * `decide` returns the patch, or undefined to leave the row as it is. Returns the saved row (or
 * the current one when nothing was written), undefined when there is no row.
 */
export async function patchInstance(
  services: Services,
  org: string,
  ref: string,
  decide: (current: Instance) => Partial<Instance> | undefined,
): Promise<Instance | undefined> {
  return retryOnConflict(async () => {
    const current = await getInstance(services, org, ref);
    if (!current) return undefined;
    const patch = decide(current);
    if (!patch) return current;
    return saveInstance(services, { ...current, ...patch });
  });
}

/** Like `saveInstance`, but a lost race answers undefined instead of throwing. */
export async function trySaveInstance(
  services: Services,
  instance: Instance,
): Promise<Instance | undefined> {
  try {
    return await saveInstance(services, instance);
  } catch (err) {
    if (isConflict(err)) return undefined;
    throw err;
  }
}
