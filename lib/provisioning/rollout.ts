/**
 * Rollouts of a new Grafana host version (the `rollouts` table, owned here): an operator asks to
 * upgrade Running instances to a template spec version (and the images pinned in this build);
 * the rollout upgrades them in batches, never more than `batch` at once, so at most `batch`
 * instances are unroutable at any moment.
 *
 * The rollout is driven by `rollout` messages on the provisioning queue in one session of their
 * own (`sessionId = "rollout"`: never two drivers at once). A message is only a nudge: the driver
 * reads the instances, counts the upgrades of this rollout in flight and starts the next ones.
 * Nudges come from the request, from every upgrade that ends (a follow-up) and from the
 * reconciler (stragglers, a lost nudge). Which instances belong to a rollout is on their row
 * (`operationReason = rollout:<id>`), so a crash between starting an upgrade and recording it
 * cannot make the driver lose count.
 */
import { randomUUID } from "node:crypto";

import type { InvocationContext } from "@azure/functions";
import { z } from "zod";

import { hostVersionOf, withTemplateSpecVersion } from "../grafana-host/versions.js";
import { isSettled } from "../instances/lifecycle.js";
import type { Instance } from "../instances/model.js";
import { listAllInstances } from "../instances/store.js";
import type { Services } from "../services.js";
import { getEntity, retryOnConflict } from "../storage/tables.js";
import { logEvent } from "../telemetry.js";

export const ROLLOUT_SESSION = "rollout";
const PK = "rollout";
const RK = "current";

export const rolloutMessageSchema = z.object({
  kind: z.literal("rollout"),
  rolloutId: z.string().min(1).max(64),
});

export interface Rollout {
  rolloutId: string;
  templateSpecId: string;
  hostVersion: string;
  /** Only this org's instances (unset: all). */
  org?: string | undefined;
  /** Upgrades at most this many instances in all. */
  max: number;
  /** Upgrades at most this many at once. */
  batch: number;
  status: "running" | "done";
  createdAt: Date;
  updatedAt: Date;
  etag?: string | undefined;
}

interface RolloutEntity extends Omit<Rollout, "etag" | "org"> {
  partitionKey: string;
  rowKey: string;
  org?: string;
}

const table = (services: Services) => services.tables.client("rollouts");

export async function readRollout(services: Services): Promise<Rollout | undefined> {
  const e = await getEntity<RolloutEntity>(table(services), PK, RK);
  if (!e) return undefined;
  return {
    rolloutId: e.rolloutId,
    templateSpecId: e.templateSpecId,
    hostVersion: e.hostVersion,
    ...(e.org ? { org: e.org } : {}),
    max: e.max,
    batch: e.batch,
    status: e.status,
    createdAt: e.createdAt,
    updatedAt: e.updatedAt,
    etag: e.etag,
  };
}

async function writeRollout(services: Services, r: Rollout): Promise<void> {
  const { etag, org, ...rest } = r;
  const entity: RolloutEntity = { ...rest, ...(org ? { org } : {}), partitionKey: PK, rowKey: RK };
  if (etag) await table(services).updateEntity(entity, "Replace", { etag });
  else await table(services).upsertEntity(entity, "Replace");
}

/** The `operationReason` of the upgrades a rollout starts. */
export const reasonOf = (rolloutId: string) => `rollout:${rolloutId}`;

export interface RolloutRequest {
  /** A template spec version (unset: the configured one). */
  templateSpecVersion?: string | undefined;
  max?: number | undefined;
  batch?: number | undefined;
  org?: string | undefined;
}

/** Starts a rollout (replacing any running one) and nudges its driver. */
export async function startRollout(services: Services, req: RolloutRequest): Promise<Rollout> {
  const now = services.clock.now();
  const configured = services.config.GRAFANA_TEMPLATE_SPEC_ID;
  const templateSpecId = req.templateSpecVersion
    ? withTemplateSpecVersion(configured, req.templateSpecVersion)
    : configured;
  const rollout: Rollout = {
    rolloutId: randomUUID(),
    templateSpecId,
    hostVersion: hostVersionOf(templateSpecId),
    ...(req.org ? { org: req.org } : {}),
    max: req.max ?? 100_000,
    batch: req.batch ?? services.config.UPGRADE_BATCH_SIZE,
    status: "running",
    createdAt: now,
    updatedAt: now,
  };
  await writeRollout(services, rollout);
  await kickRollout(services, "start");
  return rollout;
}

/** Nudges the driver of the running rollout, if there is one. */
export async function kickRollout(services: Services, why: string): Promise<boolean> {
  const rollout = await readRollout(services);
  if (rollout?.status !== "running") return false;
  await services.bus.send("provisioning", {
    body: { kind: "rollout", rolloutId: rollout.rolloutId },
    messageId: `rollout:${rollout.rolloutId}:${why}`.slice(0, 128),
    sessionId: ROLLOUT_SESSION,
  });
  return true;
}

export interface RolloutProgress {
  rolloutId: string;
  hostVersion: string;
  /** `halted`: failed upgrades hold every slot of the batch; retry them (or start anew). */
  status: Rollout["status"] | "halted";
  /** Instances of this rollout: upgraded, being upgraded, failed; and those still to do. */
  upgraded: number;
  inFlight: number;
  failed: number;
  remaining: number;
}

/** What the rollout has done and has left, from the instances (pure). */
export function rolloutProgress(rollout: Rollout, instances: readonly Instance[]) {
  const mine = instances.filter(
    (i) => i.operation === "upgrade" && i.operationReason === reasonOf(rollout.rolloutId),
  );
  const inFlight = mine.filter((i) => !isSettled(i.state));
  const upgraded = mine.filter((i) => i.state === "Running");
  const failed = mine.filter((i) => i.state === "Failed");
  const candidates = instances.filter(
    (i) =>
      i.state === "Running" &&
      i.hostVersion !== rollout.hostVersion &&
      (rollout.org === undefined || i.org === rollout.org),
  );
  // A failed upgrade leaves its instance unroutable until someone retries it: it keeps its slot,
  // so at most `batch` instances are ever unroutable, and failures halt the rollout.
  const room = Math.max(
    0,
    Math.min(
      rollout.batch - inFlight.length - failed.length,
      rollout.max - mine.length,
      candidates.length,
    ),
  );
  const left = Math.max(0, Math.min(candidates.length, rollout.max - mine.length));
  const halted = rollout.status === "running" && left > 0 && room === 0 && inFlight.length === 0;
  return {
    progress: {
      rolloutId: rollout.rolloutId,
      hostVersion: rollout.hostVersion,
      status: halted ? "halted" : rollout.status,
      upgraded: upgraded.length,
      inFlight: inFlight.length,
      failed: failed.length,
      remaining: left,
    } satisfies RolloutProgress,
    /** Oldest host versions first, then by ref: a stable order. */
    toStart: [...candidates]
      .sort(
        (a, b) =>
          (a.hostVersion ?? "").localeCompare(b.hostVersion ?? "") || a.ref.localeCompare(b.ref),
      )
      .slice(0, room),
    finished: inFlight.length === 0 && (candidates.length === 0 || mine.length >= rollout.max),
  };
}

export type StartUpgrade = (
  services: Services,
  ctx: InvocationContext,
  i: Instance,
  rollout: Rollout,
) => Promise<boolean>;

/** The driver: starts the next upgrades of the running rollout, or marks it done. */
export async function handleRolloutMessage(
  services: Services,
  body: z.infer<typeof rolloutMessageSchema>,
  ctx: InvocationContext,
  startUpgrade: StartUpgrade,
): Promise<RolloutProgress | undefined> {
  const rollout = await readRollout(services);
  if (!rollout || rollout.rolloutId !== body.rolloutId || rollout.status !== "running")
    return undefined;
  const instances = await listAllInstances(services);
  const { progress, toStart, finished } = rolloutProgress(rollout, instances);
  let started = 0;
  for (const i of toStart) if (await startUpgrade(services, ctx, i, rollout)) started += 1;
  if (finished) {
    await retryOnConflict(async () => {
      const current = await readRollout(services);
      if (current?.rolloutId !== rollout.rolloutId || current.status === "done") return;
      await writeRollout(services, {
        ...current,
        status: "done",
        updatedAt: services.clock.now(),
      });
    });
  }
  logEvent(ctx, "info", "rollout driven", {
    event: "rollout.step",
    ...progress,
    started,
    status: finished ? "done" : "running",
  });
  return {
    ...progress,
    inFlight: progress.inFlight + started,
    status: finished ? "done" : progress.status,
  };
}

/** Progress of the current rollout, for operators. */
export async function describeRollout(
  services: Services,
): Promise<(RolloutProgress & { createdAt: string; batch: number; max: number }) | undefined> {
  const rollout = await readRollout(services);
  if (!rollout) return undefined;
  const { progress } = rolloutProgress(rollout, await listAllInstances(services));
  return {
    ...progress,
    createdAt: rollout.createdAt.toISOString(),
    batch: rollout.batch,
    max: rollout.max,
  };
}
