/**
 * The `gateway` table. One row with the hash of the nginx config the gateway VM serves and the
 * moment the last render started (`coveredUntil`): every change persisted before that moment is
 * in the served config. Written only by the gateway consumer (one session: serialized), and
 * etag-conditional all the same. And one row per org whose Grafana sign-ins were revoked
 * (partition `signin-revocation`, row = org): sign-ins issued before its moment are refused.
 */
import type { Services } from "../services.js";
import { getEntity } from "../storage/tables.js";

const PK = "gateway";
const RK = "";

export interface GatewayState {
  /** sha256 of the applied config. */
  hash?: string | undefined;
  /** When the last push was confirmed by the VM. */
  appliedAt?: Date | undefined;
  /** Start of the last render that the served config reflects (pushed or found unchanged). */
  coveredUntil?: Date | undefined;
  /** Routes in the applied config. */
  routes?: number | undefined;
  /** Confirmed pushes so far. */
  pushes: number;
  etag?: string | undefined;
}

interface GatewayEntity {
  partitionKey: string;
  rowKey: string;
  hash?: string;
  appliedAt?: Date;
  coveredUntil?: Date;
  routes?: number;
  pushes?: number;
}

export async function readGatewayState(services: Services): Promise<GatewayState> {
  const e = await getEntity<GatewayEntity>(services.tables.client("gateway"), PK, RK);
  if (!e) return { pushes: 0 };
  return {
    hash: e.hash ?? undefined,
    appliedAt: e.appliedAt ?? undefined,
    coveredUntil: e.coveredUntil ?? undefined,
    routes: e.routes ?? undefined,
    pushes: e.pushes ?? 0,
    etag: e.etag,
  };
}

/** Creates the row (no etag yet) or replaces it if unchanged since read; 409/412 on a lost race. */
export async function saveGatewayState(
  services: Services,
  state: GatewayState,
): Promise<GatewayState> {
  const table = services.tables.client("gateway");
  const entity: GatewayEntity = {
    partitionKey: PK,
    rowKey: RK,
    pushes: state.pushes,
    ...(state.hash !== undefined ? { hash: state.hash } : {}),
    ...(state.appliedAt !== undefined ? { appliedAt: state.appliedAt } : {}),
    ...(state.coveredUntil !== undefined ? { coveredUntil: state.coveredUntil } : {}),
    ...(state.routes !== undefined ? { routes: state.routes } : {}),
  };
  const res = state.etag
    ? await table.updateEntity(entity, "Replace", { etag: state.etag })
    : await table.createEntity(entity);
  return { ...state, etag: res.etag };
}

const REVOCATIONS = "signin-revocation";

interface RevocationEntity {
  partitionKey: string;
  rowKey: string;
  notBefore: number;
  actor: string;
}

/** Per org: sign-ins issued before this moment (epoch seconds) are refused. */
export async function readRevocations(services: Services): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const rows = services.tables.client("gateway").listEntities<RevocationEntity>({
    queryOptions: { filter: `PartitionKey eq '${REVOCATIONS}'` },
  });
  for await (const row of rows) {
    if (typeof row.notBefore === "number" && row.rowKey) out.set(row.rowKey, row.notBefore);
  }
  return out;
}

/** Records the org's revocation moment (epoch seconds), replacing an earlier one. */
export async function saveRevocation(
  services: Services,
  org: string,
  notBefore: number,
  actor: string,
): Promise<void> {
  await services.tables
    .client("gateway")
    .upsertEntity<RevocationEntity>(
      { partitionKey: REVOCATIONS, rowKey: org, notBefore, actor: actor.slice(0, 200) },
      "Replace",
    );
}
