/**
 * The steps of the lifecycle's operations (see ../instances/lifecycle.ts for the table). Each step
 * is idempotent, runs only when the instance row says it is the current one, and only decides:
 * it returns a `StepResult`, and the engine (./engine.ts) turns that into the row's next state.
 * The one write a step makes itself is `record`: an intent that must be durable before a side
 * effect (the deployment PUT), never the state.
 *
 * Side effects are idempotent by construction: the deployment has a fixed name and carries the
 * operation id as a tag, and its PUT is sent once per operation (see `deploy`), the DNS
 * record is an upsert that writes only when it differs, deletes of missing resources succeed,
 * and the gateway is re-rendered from the table.
 */
import type { InvocationContext } from "@azure/functions";

import { alertingForDeploy, smtpFromConfig } from "../alerts/desired.js";
import {
  deleteDeployment,
  deleteDnsRecord,
  deploymentId,
  deploymentName,
  getDataDisk,
  getDeployment,
  isActiveDeployment,
  isDataDisk,
  isSnapshot,
  isVm,
  listSnapshots,
  listTaggedResources,
  type TaggedResource,
  putDeployment,
  readVmPrivateIp,
  startDelete,
  upsertDnsRecord,
  vmNameFor,
} from "../azure/arm.js";
import { ARM_REQUEST_TIMEOUT_MS } from "../azure/clients.js";
import { armStatus } from "../azure/errors.js";
import { isValidIpv4 } from "../gateway/nginx.js";
import {
  GATEWAY_COALESCE_MS,
  MIN_PUSH_INTERVAL_MS,
  requestGatewaySync,
} from "../gateway/consumer.js";
import { readGatewayState } from "../gateway/state.js";
import { hostVersionOf } from "../grafana-host/versions.js";
import type { StepId, StepResult } from "../instances/lifecycle.js";
import type { Instance } from "../instances/model.js";
import type { Services } from "../services.js";
import {
  decryptPassword,
  encryptPassword,
  generatePassword,
  healthUrl,
  instanceUrl,
  probe,
} from "./grafana-admin.js";
import { logEvent } from "../telemetry.js";
import {
  KEY_DELETE_REASONS,
  keyNameFor,
  mintOrReuseKey,
  pruneKeys,
  revokeKey,
} from "./instance-key.js";

export interface StepEnv {
  services: Services;
  ctx: InvocationContext;
  /** The row as last read or saved (with its etag); `record` keeps it current. */
  instance: Instance;
  /** Attempt of the current step (0 = first). */
  attempt: number;
  /**
   * Etag-conditional save of an intent that must be durable before a side effect (a lost race
   * throws; the engine reads the row again). Never the state: that is the lifecycle's.
   */
  record(
    patch: Omit<Partial<Instance>, "state" | "step" | "attempts" | "operationId">,
  ): Promise<Instance>;
  /** Secrets met during the step; they are redacted from anything stored or logged. */
  secrets: string[];
}

export type Step = (env: StepEnv) => Promise<StepResult>;

/** How long Verifying probes Grafana through the gateway before giving up. */
export const VERIFY_WINDOW_MS = 15 * 60_000;
/** Verifying and unrouting re-request a gateway push every this many polls (a lost push heals). */
const GATEWAY_NUDGE_EVERY = 5;
/** Unrouting waits at most this long for the gateway to confirm; the host goes regardless. */
export const UNROUTE_MAX_WAIT_MS = 3 * 60_000;

const pollMs = (services: Services) => services.config.PROVISION_POLL_SECONDS * 1000;

const transient = (message: string): StepResult => ({ kind: "retry", error: { message } });

// ----- removing resources ------------------------------------------------------------------

export interface Removal {
  /** Nothing of what was to go is left. */
  done: boolean;
  /** What it waits for, when not done. */
  why: string;
  /** Deletes this call started (resources it found and asked ARM to delete). */
  deletesStarted: number;
  /** Failures of single resources; the others were still tried. */
  errors: string[];
}

/**
 * Removes a project's resources, except those `keep` selects: waits for a running deployment,
 * deletes the VMs first (a NIC or disk cannot go while attached), then the rest. Each resource
 * fails alone: one refused or failed delete does not stop the others. Deletes of resources that
 * are already gone succeed, so calling it again converges.
 */
async function removeTagged(
  services: Services,
  ref: string,
  keep: (r: TaggedResource) => boolean,
  resources?: TaggedResource[],
): Promise<Removal> {
  const out: Removal = { done: false, why: "", deletesStarted: 0, errors: [] };
  const deployment = await getDeployment(services, ref);
  if (isActiveDeployment(deployment)) {
    out.why = "a deployment of this project is still running";
    return out;
  }
  const start = async (r: TaggedResource, attachedIsExpected: boolean) => {
    try {
      await startDelete(services, r);
      out.deletesStarted += 1;
    } catch (err) {
      // Still attached to a VM that is being deleted: the next poll retries.
      const s = armStatus(err);
      if (attachedIsExpected && (s === 400 || s === 409)) return;
      out.errors.push(`${r.name}: ${err instanceof Error ? err.message.slice(0, 160) : "failed"}`);
    }
  };
  let found = (resources ?? (await listTaggedResources(services, ref))).filter((r) => !keep(r));
  const vms = found.filter(isVm);
  if (vms.length > 0) {
    for (const vm of vms) await start(vm, false);
    found = (await listTaggedResources(services, ref)).filter((r) => !keep(r));
    if (found.some(isVm)) {
      out.why = "deleting the VM";
      return out;
    }
  }
  if (found.length > 0) {
    for (const r of found) await start(r, true);
    found = (await listTaggedResources(services, ref)).filter((r) => !keep(r));
    if (found.length > 0) {
      out.why = "deleting the NIC and disks";
      return out;
    }
  }
  out.done = out.errors.length === 0;
  if (!out.done) out.why = out.errors.join("; ");
  return out;
}

/** Removes the host (VM, NIC, OS disk) and keeps the data disk and its snapshots. */
export const removeHost = (services: Services, ref: string) =>
  removeTagged(services, ref, (r) => isDataDisk(r) || isSnapshot(r));

/**
 * Removes everything of a project (data disk and snapshots included) and the deployment
 * record. `resources`: what a caller already listed (the reconciler lists once for all refs).
 */
export async function removeAllResources(
  services: Services,
  ref: string,
  resources?: TaggedResource[],
): Promise<Removal> {
  const removal = await removeTagged(services, ref, () => false, resources);
  if (!removal.done) return removal;
  if ((await deleteDeployment(services, ref)) === "active") {
    return { ...removal, done: false, why: "a deployment of this project is still running" };
  }
  return removal;
}

function removalResult(removal: Removal): StepResult {
  if (removal.done) return { kind: "done" };
  if (removal.errors.length > 0) return transient(`Could not delete ${removal.errors.join("; ")}`);
  return { kind: "wait", why: removal.why };
}

// ----- provision ---------------------------------------------------------------------------

/** After a failed attempt: remove the host it left behind (the data disk stays). */
const cleanup: Step = async (env) =>
  removalResult(await removeHost(env.services, env.instance.ref));

/**
 * How long a recorded deployment request counts as in flight. A PUT ends (answered or timed
 * out) within ARM_REQUEST_TIMEOUT_MS of being sent, and its sender then clears the record; one
 * still there after this long was left by a sender that died before or during its PUT.
 */
export const DEPLOYMENT_REQUEST_GRACE_MS = 2 * ARM_REQUEST_TIMEOUT_MS;

/**
 * Exactly one deployment PUT per operation, even when two deliveries of this step run at once
 * (a session lock lost on a loaded host hands the message to a second receiver while the first
 * still runs it), or a delivery is redelivered after a crash:
 * - a deployment tagged with this operation is adopted, whatever its state (never PUT again);
 * - the intent to PUT is written to the row, etag-conditionally, right before the PUT: of two
 *   concurrent runs only one gets that write through; the other re-reads the row;
 * - a run that finds a recorded request and no deployment waits for that request to end (its
 *   sender clears the record once the PUT has returned) and PUTs only after the grace period,
 *   when the sender is known to have died before its request reached ARM.
 * ARM itself refuses a second PUT of a running deployment (409 DeploymentActive), so a stray
 * request can never redeploy a running host.
 */
const deploy: Step = async (env) => {
  const { services } = env;
  let i = env.instance;

  const existing = await getDeployment(services, i.ref);
  const templateSpecId = i.templateSpecId ?? services.config.GRAFANA_TEMPLATE_SPEC_ID;
  const done = (patch: Partial<Instance> = {}): StepResult => ({
    kind: "done",
    patch: {
      deploymentName: deploymentName(i.ref),
      deploymentId: deploymentId(services, i.ref),
      vmName: vmNameFor(i.ref),
      pendingHostVersion: hostVersionOf(templateSpecId),
      // Known only when this run rendered cloud-init (not when it adopted a deployment).
      bootAlertingVersion: undefined,
      bootAlertingHash: undefined,
      deploymentRequestOperationId: undefined,
      deploymentRequestedAt: undefined,
      ...patch,
    },
    delayMs: pollMs(services),
  });
  // This operation's PUT went through (it may even have ended): adopt it, never PUT twice.
  if (existing?.operationId === i.operationId) return done();
  if (isActiveDeployment(existing))
    return { kind: "wait", why: "an earlier deployment of this project is still running" };
  const now = services.clock.now();
  if (i.deploymentRequestOperationId === i.operationId && i.deploymentRequestedAt) {
    const age = now.getTime() - i.deploymentRequestedAt.getTime();
    if (age < DEPLOYMENT_REQUEST_GRACE_MS) {
      return {
        kind: "wait",
        why: "the deployment request of this operation is in flight",
        delayMs: Math.min(pollMs(services), DEPLOYMENT_REQUEST_GRACE_MS - age),
      };
    }
  }

  // A replaced host attaches the data disk its predecessor used; when that disk is gone, the
  // newest snapshot of it is restored (the template creates the disk from it).
  let restoreFrom: string | undefined;
  if (i.operation === "upgrade" || i.operation === "heal") {
    if (!(await getDataDisk(services, i.ref))) {
      restoreFrom = (await listSnapshots(services, i.ref))[0]?.id;
      logEvent(env.ctx, "warn", "the data disk is gone; restoring it", {
        event: "provisioning.data_disk_missing",
        operationId: i.operationId,
        ref: i.ref,
        org: i.org,
        snapshot: restoreFrom ?? "none: an empty disk is created",
      });
    }
  }

  let password: string;
  let passwordSecret: string | undefined;
  if (i.passwordSecret) {
    password = await decryptPassword(services, i.org, i.ref, i.passwordSecret);
  } else {
    password = generatePassword();
    passwordSecret = await encryptPassword(services, i.org, i.ref, password);
  }
  env.secrets.push(password);
  const smtp = smtpFromConfig(services);
  if (smtp) env.secrets.push(smtp.password);

  // Minted (or found again, under this operation's name) at deploy time, handed to ARM only
  // inside the @secure() cloudInit parameter; the row keeps its id.
  const key = await mintOrReuseKey(services, i, keyNameFor(i.operationId), i.keyId);
  env.secrets.push(key.value);
  // The alerting the org wants (rules, recipients), so the host boots serving it.
  const alerting = await alertingForDeploy(services, i, env.ctx);

  // Loaded here: only this step renders host documents (and needs the YAML library).
  const { GrafanaHostInputError, renderCloudInit } = await import("../grafana-host/index.js");
  let cloudInit: string;
  try {
    cloudInit = renderCloudInit({
      ref: i.ref,
      domain: services.config.GRAFANA_DOMAIN,
      serviceRoleKey: key.value,
      grafanaAdminPassword: password,
      gatewayPrivateIp: services.config.GATEWAY_PRIVATE_IP,
      alerts: alerting.alerts,
      alertEmails: alerting.alertEmails,
      ...(smtp ? { smtp } : {}),
    });
  } catch (err) {
    if (err instanceof GrafanaHostInputError) {
      return { kind: "fail", message: `The Grafana host could not be configured: ${err.message}` };
    }
    throw err;
  }
  env.secrets.push(cloudInit);

  // The intent, persisted before the side effect (a lost race throws RowMovedError: the engine
  // reads the row again and this step then adopts or waits).
  i = await env.record({
    ...(passwordSecret ? { passwordSecret } : {}),
    keyId: key.id,
    keyKind: key.kind,
    ...(key.id && key.id !== i.keyId ? { keyRotatedAt: services.clock.now() } : {}),
    pendingKeyId: undefined,
    deploymentRequestOperationId: i.operationId,
    deploymentRequestedAt: services.clock.now(),
  });
  let outcome: "accepted" | "active";
  try {
    outcome = await putDeployment(services, {
      ref: i.ref,
      org: i.org,
      operationId: i.operationId,
      templateSpecId,
      vmSize: services.config.GRAFANA_VM_SIZE,
      cloudInit,
      subnetId: services.config.GRAFANA_SUBNET_ID,
      adminSshPublicKey: services.config.GRAFANA_ADMIN_SSH_PUBLIC_KEY,
      ...(restoreFrom ? { dataDiskSnapshotId: restoreFrom } : {}),
    });
  } catch (err) {
    // The request is over: whatever it did, the next attempt's GET shows it.
    await settleRequest(env);
    throw err;
  }
  if (outcome === "active") {
    // Another deployment of this project is running (ours would have been seen by the GET).
    await settleRequest(env);
    return { kind: "wait", why: "an earlier deployment of this project is still running" };
  }
  return done({
    bootAlertingVersion: alerting.version,
    bootAlertingHash: alerting.hash,
    ...(restoreFrom ? { restoredFromSnapshot: restoreFrom } : {}),
  });
};

/** Clears the recorded deployment request once its PUT has returned. */
async function settleRequest(env: StepEnv): Promise<void> {
  await env.record({ deploymentRequestOperationId: undefined, deploymentRequestedAt: undefined });
}

const awaitDeployment: Step = async (env) => {
  const i = env.instance;
  const d = await getDeployment(env.services, i.ref);
  // ARM may briefly not show a deployment it has just accepted; a missing one uses up the budget.
  if (!d || d.operationId !== i.operationId)
    return transient("The Azure deployment of this instance was not found.");
  if (isActiveDeployment(d)) return { kind: "wait", why: `deployment ${d.provisioningState}` };
  if (d.provisioningState === "Succeeded") return { kind: "done" };
  return {
    kind: "fail",
    message: `The Azure deployment failed: ${d.error ?? d.provisioningState}`,
  };
};

const configure: Step = async (env) => {
  const { services } = env;
  const i = env.instance;
  const ip = await readVmPrivateIp(services, i.ref);
  if (!ip || !isValidIpv4(ip)) return transient("The Grafana VM has no private IP address yet.");
  await upsertDnsRecord(services, i.ref);
  // The deployment carries the row's key: a key an earlier attempt, a lost race, a failed
  // operation or the replaced host held is of no use to anyone now.
  // Best effort: the reconciler's key sweep removes what is left.
  if (i.keyKind === "dedicated" && i.keyId) {
    await pruneKeys(services, env.ctx, i, [i.keyId], KEY_DELETE_REASONS.superseded).catch(
      (err: unknown) => {
        logEvent(env.ctx, "warn", "could not prune superseded Supabase keys", {
          event: "supabase.key_prune_failed",
          operationId: i.operationId,
          ref: i.ref,
          org: i.org,
          error: err instanceof Error ? err.message.slice(0, 200) : "unknown",
        });
        return 0;
      },
    );
  }
  // The private IP makes the instance routable: the transition asks the gateway to route it.
  return { kind: "done", patch: { privateIp: ip, url: instanceUrl(services, i.ref) } };
};

/** When the gateway push that carries a change saved now is due, from now. */
async function gatewayPushDueInMs(services: Services): Promise<number> {
  const gateway = await readGatewayState(services);
  const now = services.clock.now().getTime();
  const due = Math.max(
    now + GATEWAY_COALESCE_MS,
    (gateway.appliedAt?.getTime() ?? 0) + MIN_PUSH_INTERVAL_MS,
  );
  return due - now;
}

const verify: Step = async (env) => {
  const { services } = env;
  const i = env.instance;
  // The route was requested with the transition into Verifying. Probe first when the push that
  // carries it is due, not before: every early probe is one more message (and one more idle
  // turn of the project's session).
  if (env.attempt === 0) {
    return {
      kind: "wait",
      why: "gateway update requested",
      delayMs: (await gatewayPushDueInMs(services)) + pollMs(services),
    };
  }
  const status = await probe(services, healthUrl(services, i.ref));
  if (status === 200) return { kind: "done" };
  if (env.attempt * pollMs(services) >= VERIFY_WINDOW_MS) {
    return {
      kind: "fail",
      message: `Grafana did not answer at ${instanceUrl(services, i.ref)} within ${Math.round(VERIFY_WINDOW_MS / 60_000)} minutes of starting (last probe: ${status === 0 ? "no answer" : `HTTP ${status}`}).`,
    };
  }
  if (env.attempt % GATEWAY_NUDGE_EVERY === 0)
    await requestGatewaySync(services, `route ${i.ref} (again)`);
  return { kind: "wait", why: `probe answered ${status === 0 ? "nothing" : status}` };
};

// ----- upgrade and heal ----------------------------------------------------------------------

/**
 * Drains the route before the host goes: the operation's start made the instance unroutable
 * and asked the gateway to converge; done once the gateway serves a config rendered after that
 * (or after UNROUTE_MAX_WAIT_MS: the host is replaced even while the gateway is unwell).
 */
const unroute: Step = async (env) => {
  const { services } = env;
  const i = env.instance;
  const gateway = await readGatewayState(services);
  const now = services.clock.now().getTime();
  if ((gateway.coveredUntil?.getTime() ?? 0) >= i.operationStartedAt.getTime())
    return { kind: "done" };
  if (now - i.operationStartedAt.getTime() >= UNROUTE_MAX_WAIT_MS) {
    logEvent(env.ctx, "warn", "the gateway did not confirm the unroute in time; replacing anyway", {
      event: "provisioning.unroute_unconfirmed",
      operationId: i.operationId,
      ref: i.ref,
      org: i.org,
    });
    return { kind: "done" };
  }
  if (env.attempt > 0 && env.attempt % GATEWAY_NUDGE_EVERY === 0)
    await requestGatewaySync(services, `unroute ${i.ref} (again)`);
  return {
    kind: "wait",
    why: "waiting for the gateway to drop the route",
    delayMs: env.attempt === 0 ? await gatewayPushDueInMs(services) : pollMs(services),
  };
};

/** Deletes the VM, its NIC and OS disk; the data disk and its snapshots stay. */
const removeHostStep: Step = async (env) =>
  removalResult(await removeHost(env.services, env.instance.ref));

// ----- deprovision -------------------------------------------------------------------------

/** The route went with the operation's start (the state is Deleting); the DNS record goes now. */
const drain: Step = async (env) => {
  await deleteDnsRecord(env.services, env.instance.ref);
  return { kind: "done" };
};

const deleteResources: Step = async (env) => {
  const i = env.instance;
  const removal = await removeAllResources(env.services, i.ref);
  if (!removal.done) return removalResult(removal);
  // The VM is gone: revoke what it held (a failure leaves the id for the reconciler to retry).
  const keyRevoked = i.keyId
    ? await revokeKey(env.services, env.ctx, i, i.keyId, KEY_DELETE_REASONS.deprovisioned)
    : true;
  if (i.pendingKeyId)
    await revokeKey(env.services, env.ctx, i, i.pendingKeyId, KEY_DELETE_REASONS.deprovisioned);
  return {
    kind: "done",
    patch: keyRevoked ? { keyId: undefined, keyKind: undefined, keyRotatedAt: undefined } : {},
  };
};

export const STEPS: Readonly<Record<StepId, Step>> = {
  cleanup,
  unroute,
  "remove-host": removeHostStep,
  deploy,
  "await-deployment": awaitDeployment,
  configure,
  verify,
  drain,
  "delete-resources": deleteResources,
};
