/**
 * The `projectRefs` table (PK = ref): guards that a project ref belongs to one org only and
 * remembers that a project has used its one trial, even after its instance is deleted. The only
 * module that touches the table.
 */
import { AppError, conflict } from "../errors.js";
import type { Services } from "../services.js";
import { getEntity, retryOnConflict } from "../storage/tables.js";

/** The owner of a project ref across orgs and the trial it has used. */
export interface ProjectRefRecord {
  ref: string;
  org: string;
  trialStartedAt?: Date | undefined;
  trialEndsAt?: Date | undefined;
  etag?: string | undefined;
}

export interface TrialRecord {
  trialStartedAt: Date;
  trialEndsAt: Date;
}

const ownedElsewhere = () =>
  conflict("This project is monitored by another organization.", "project_owned_elsewhere");

const table = (services: Services) => services.tables.client("projectRefs");

export async function getProjectRef(
  services: Services,
  ref: string,
): Promise<ProjectRefRecord | undefined> {
  const e = await getEntity<{ org: string; trialStartedAt?: Date; trialEndsAt?: Date }>(
    table(services),
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

/** 409 `project_owned_elsewhere` when another org owns the ref. */
export async function assertRefNotOwnedElsewhere(
  services: Services,
  org: string,
  ref: string,
): Promise<void> {
  const owner = await getProjectRef(services, ref);
  if (owner && owner.org !== org) throw ownedElsewhere();
}

/** Claims the ref for the org (a ref belongs to one org only); 409 when another org has it. */
export async function claimRef(services: Services, org: string, ref: string): Promise<void> {
  await retryOnConflict(
    async () => {
      const owner = await getProjectRef(services, ref);
      if (owner) {
        if (owner.org !== org) throw ownedElsewhere();
        return;
      }
      await table(services).createEntity({ partitionKey: ref, rowKey: "", org });
    },
    {
      exhausted: () =>
        new AppError(503, "unavailable", "The project could not be claimed; try again."),
    },
  );
}

/**
 * Records that the project started its one trial. Creates the row when absent; otherwise sets
 * the trial with an etag-conditional Merge. A trial already recorded is never moved: the
 * recorded one is returned. A ref owned by another org is a 409.
 */
export async function recordTrialStart(
  services: Services,
  org: string,
  ref: string,
  trialEndsAt: Date,
): Promise<TrialRecord> {
  return retryOnConflict(
    async () => {
      const current = await getProjectRef(services, ref);
      const now = services.clock.now();
      if (!current) {
        await table(services).createEntity({
          partitionKey: ref,
          rowKey: "",
          org,
          trialStartedAt: now,
          trialEndsAt,
        });
        return { trialStartedAt: now, trialEndsAt };
      }
      if (current.org !== org) throw ownedElsewhere();
      if (current.trialStartedAt || current.trialEndsAt) {
        const startedAt = current.trialStartedAt ?? current.trialEndsAt ?? now;
        return { trialStartedAt: startedAt, trialEndsAt: current.trialEndsAt ?? startedAt };
      }
      await table(services).updateEntity(
        { partitionKey: ref, rowKey: "", trialStartedAt: now, trialEndsAt },
        "Merge",
        current.etag ? { etag: current.etag } : undefined,
      );
      return { trialStartedAt: now, trialEndsAt };
    },
    {
      exhausted: () =>
        new AppError(503, "unavailable", "The project's trial could not be recorded; try again."),
    },
  );
}
