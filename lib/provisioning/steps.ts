/**
 * The steps of the two operations. Each step is idempotent and runs only when the instance row
 * says it is the current one; the engine (./engine.ts) persists the outcome before it sends the
 * message of the next step.
 *
 * provision:   cleanup? -> deploy -> await-deployment -> configure -> verify -> (Running)
 * deprovision: drain -> delete-resources -> (Deleted)
 *
 * Side effects are idempotent by construction: the deployment has a fixed name and carries the
 * operation id as a tag, and its PUT is sent once per operation (see `deploy`), the DNS
 * record is an upsert that writes only when it differs, deletes of missing resources succeed,
 * and the gateway is re-rendered from the table.
 */
import type { InvocationContext } from "@azure/functions";

import {
  deleteDeployment,
  deleteDnsRecord,
  deploymentId,
  deploymentName,
  getDeployment,
  isActiveDeployment,
  isVm,
  listTaggedResources,
  putDeployment,
  readVmPrivateIp,
  startDelete,
  upsertDnsRecord,
  vmNameFor,
} from "../azure/arm.js";
import { ARM_REQUEST_TIMEOUT_MS } from "../azure/clients.js";
import { armStatus, type FailureInfo } from "../azure/errors.js";
import { isValidIpv4 } from "../gateway/nginx.js";
import {
  GATEWAY_COALESCE_MS,
  MIN_PUSH_INTERVAL_MS,
  requestGatewaySync,
} from "../gateway/consumer.js";
import { readGatewayState } from "../gateway/state.js";
import type { GrafanaHostInput } from "../grafana-host/index.js";
import type { Instance, InstanceState } from "../instances/store.js";
import { sendMail } from "../mail.js";
import type { Services } from "../services.js";
import { supabaseFor } from "../supabase/client.js";
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
  /** The row as last read or saved (with its etag); `save` keeps it current. */
  instance: Instance;
  /** Attempt of the current step (0 = first). */
  attempt: number;
  /** Etag-conditional save of a patch of the row (412 if it moved). */
  save(patch: Partial<Instance>): Promise<Instance>;
  /** Secrets met during the step; they are redacted from anything stored or logged. */
  secrets: string[];
}

export type StepResult =
  /** Move on; the next step's message is sent (after `delayMs`). */
  | {
      kind: "advance";
      state: InstanceState;
      step: string;
      patch?: Partial<Instance>;
      delayMs?: number;
    }
  /** Expected waiting (a deployment running, a delete in progress): poll again, not a failure. */
  | { kind: "wait"; why: string; delayMs?: number }
  /** A transient failure: retry with backoff, within the operation's budget. */
  | { kind: "retry"; error: FailureInfo }
  | { kind: "complete"; state: "Running" | "Deleted"; patch?: Partial<Instance> }
  | { kind: "fail"; message: string };

export type Step = (env: StepEnv) => Promise<StepResult>;

/** How long Verifying probes Grafana through the gateway before giving up. */
export const VERIFY_WINDOW_MS = 15 * 60_000;
/** Verifying re-requests a gateway push every this many probes (a lost push heals). */
const GATEWAY_NUDGE_EVERY = 5;

const pollMs = (services: Services) => services.config.PROVISION_POLL_SECONDS * 1000;

const transient = (message: string): StepResult => ({
  kind: "retry",
  error: { transient: true, unexpected: false, message },
});

// ----- shared ------------------------------------------------------------------------------

/**
 * Removes everything of the project's Grafana host: waits for a running deployment, deletes the
 * VMs first (a NIC or disk cannot go while attached), then the rest, then the deployment record.
 * Returns "clean" when nothing is left, else what it is waiting for.
 */
export async function sweep(services: Services, ref: string): Promise<string> {
  const deployment = await getDeployment(services, ref);
  if (isActiveDeployment(deployment)) return "a deployment of this project is still running";

  let resources = await listTaggedResources(services, ref);
  const vms = resources.filter(isVm);
  if (vms.length > 0) {
    for (const vm of vms) await startDelete(services, vm);
    resources = await listTaggedResources(services, ref);
    if (resources.some(isVm)) return "deleting the VM";
  }
  if (resources.length > 0) {
    for (const r of resources) {
      try {
        await startDelete(services, r);
      } catch (err) {
        // Still attached to a VM that is being deleted: the next poll retries.
        const s = armStatus(err);
        if (s !== 400 && s !== 409) throw err;
      }
    }
    resources = await listTaggedResources(services, ref);
    if (resources.length > 0) return "deleting the NIC and disks";
  }
  if (deployment) {
    if ((await deleteDeployment(services, ref)) === "active")
      return "a deployment of this project is still running";
  }
  return "clean";
}

/** The e-mail address of whoever asked for the operation, when Supabase knows it. */
async function requesterEmail(env: StepEnv): Promise<string | undefined> {
  const i = env.instance;
  if (!i.requestedBy) return undefined;
  try {
    const members = await supabaseFor(env.services, i.org).listMembers();
    return members.find((m) => m.userId === i.requestedBy)?.email ?? undefined;
  } catch (err) {
    logEvent(env.ctx, "warn", "could not look up the requester's e-mail", {
      event: "provisioning.email_lookup_failed",
      operationId: i.operationId,
      ref: i.ref,
      org: i.org,
      error: err instanceof Error ? err.message.slice(0, 200) : "unknown",
    });
    return undefined;
  }
}

async function notify(
  env: StepEnv,
  template: "instanceReady" | "instanceDeleted",
  data: Record<string, string>,
): Promise<void> {
  const i = env.instance;
  const email = await requesterEmail(env);
  if (!email) return;
  try {
    await sendMail(env.services, template, email, data, `${template}:${i.operationId}`);
  } catch (err) {
    logEvent(env.ctx, "warn", "could not send the e-mail", {
      event: "provisioning.email_failed",
      template,
      operationId: i.operationId,
      ref: i.ref,
      org: i.org,
      error: err instanceof Error ? err.message.slice(0, 200) : "unknown",
    });
  }
}

// ----- provision ---------------------------------------------------------------------------

/** After a failed attempt: remove what it left behind before deploying again. */
const cleanup: Step = async (env) => {
  const status = await sweep(env.services, env.instance.ref);
  if (status !== "clean") return { kind: "wait", why: status };
  return { kind: "advance", state: "Requested", step: "deploy" };
};

function smtpSettings(services: Services): GrafanaHostInput["smtp"] {
  const c = services.config;
  if (!c.SMTP_HOST || !c.SMTP_USER || !c.SMTP_PASSWORD || !c.SMTP_FROM_ADDRESS) return undefined;
  return {
    host: c.SMTP_HOST,
    port: c.SMTP_PORT,
    user: c.SMTP_USER,
    password: c.SMTP_PASSWORD,
    fromAddress: c.SMTP_FROM_ADDRESS,
  };
}

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
  const next = {
    kind: "advance" as const,
    state: "Deploying" as const,
    step: "await-deployment",
    patch: {
      deploymentName: deploymentName(i.ref),
      deploymentId: deploymentId(services, i.ref),
      vmName: vmNameFor(i.ref),
      deploymentRequestOperationId: undefined,
      deploymentRequestedAt: undefined,
    },
    delayMs: pollMs(services),
  };
  // This operation's PUT went through (it may even have ended): adopt it, never PUT twice.
  if (existing?.operationId === i.operationId) return next;
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

  let password: string;
  let passwordSecret: string | undefined;
  if (i.passwordSecret) {
    password = await decryptPassword(services, i.org, i.ref, i.passwordSecret);
  } else {
    password = generatePassword();
    passwordSecret = await encryptPassword(services, i.org, i.ref, password);
  }
  env.secrets.push(password);
  const smtp = smtpSettings(services);
  if (smtp) env.secrets.push(smtp.password);

  // Minted (or found again, under this operation's name) at deploy time, handed to ARM only
  // inside the @secure() cloudInit parameter; the row keeps its id.
  const key = await mintOrReuseKey(services, i, keyNameFor(i.operationId), i.keyId);
  env.secrets.push(key.value);
  const serviceKey = key.value;
  const email = await requesterEmail(env);

  // Loaded here: only this step renders host documents (and needs the YAML library).
  const { GrafanaHostInputError, renderCloudInit } = await import("../grafana-host/index.js");
  let cloudInit: string;
  try {
    cloudInit = renderCloudInit({
      ref: i.ref,
      domain: services.config.GRAFANA_DOMAIN,
      serviceRoleKey: serviceKey,
      grafanaAdminPassword: password,
      gatewayPrivateIp: services.config.GATEWAY_PRIVATE_IP,
      alertEmails: email ? [email] : [],
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
  i = await env.save({
    state: "Deploying",
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
      templateSpecId: services.config.GRAFANA_TEMPLATE_SPEC_ID,
      vmSize: services.config.GRAFANA_VM_SIZE,
      cloudInit,
      subnetId: services.config.GRAFANA_SUBNET_ID,
      adminSshPublicKey: services.config.GRAFANA_ADMIN_SSH_PUBLIC_KEY,
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
  return next;
};

/** Clears the recorded deployment request once its PUT has returned. */
async function settleRequest(env: StepEnv): Promise<void> {
  await env.save({ deploymentRequestOperationId: undefined, deploymentRequestedAt: undefined });
}

const awaitDeployment: Step = async (env) => {
  const i = env.instance;
  const d = await getDeployment(env.services, i.ref);
  // ARM may briefly not show a deployment it has just accepted; a missing one uses up the budget.
  if (!d || d.operationId !== i.operationId)
    return transient("The Azure deployment of this instance was not found.");
  if (isActiveDeployment(d)) return { kind: "wait", why: `deployment ${d.provisioningState}` };
  if (d.provisioningState === "Succeeded")
    return { kind: "advance", state: "Configuring", step: "configure" };
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
  // The deployment carries the row's key: a key an earlier attempt, a lost race or a failed
  // operation minted is of no use to anyone now.
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
  return {
    kind: "advance",
    state: "Verifying",
    step: "verify",
    patch: { privateIp: ip, url: instanceUrl(services, i.ref) },
  };
};

const verify: Step = async (env) => {
  const { services } = env;
  const i = env.instance;
  // The private IP is persisted: ask the gateway to route it, then probe through the gateway.
  if (env.attempt === 0) {
    await requestGatewaySync(services, `route ${i.ref}`);
    // Probe first when the push that carries the route is due, not before: every early probe
    // is one more message (and one more idle turn of the project's session).
    const gateway = await readGatewayState(services);
    const now = services.clock.now().getTime();
    const pushDue = Math.max(
      now + GATEWAY_COALESCE_MS,
      (gateway.appliedAt?.getTime() ?? 0) + MIN_PUSH_INTERVAL_MS,
    );
    return {
      kind: "wait",
      why: "gateway update requested",
      delayMs: pushDue - now + pollMs(services),
    };
  }
  const status = await probe(services, healthUrl(services, i.ref));
  if (status === 200) {
    await notify(env, "instanceReady", {
      projectRef: i.ref,
      projectName: i.projectName ?? i.ref,
      url: instanceUrl(services, i.ref),
    });
    return { kind: "complete", state: "Running", patch: { readyAt: services.clock.now() } };
  }
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

// ----- deprovision -------------------------------------------------------------------------

/** Stop routing first (the state is already Deleting, so the next render drops the route). */
const drain: Step = async (env) => {
  const i = env.instance;
  await requestGatewaySync(env.services, `unroute ${i.ref}`);
  await deleteDnsRecord(env.services, i.ref);
  return { kind: "advance", state: "Deleting", step: "delete-resources" };
};

const deleteResources: Step = async (env) => {
  const i = env.instance;
  const status = await sweep(env.services, i.ref);
  if (status !== "clean") return { kind: "wait", why: status };
  // The VM is gone: revoke what it held (a failure leaves the id for the reconciler to retry).
  const keyRevoked = i.keyId
    ? await revokeKey(env.services, env.ctx, i, i.keyId, KEY_DELETE_REASONS.deprovisioned)
    : true;
  if (i.pendingKeyId)
    await revokeKey(env.services, env.ctx, i, i.pendingKeyId, KEY_DELETE_REASONS.deprovisioned);
  await notify(env, "instanceDeleted", {
    projectRef: i.ref,
    projectName: i.projectName ?? i.ref,
    reason: i.operationReason ?? "requested",
  });
  return {
    kind: "complete",
    state: "Deleted",
    patch: {
      privateIp: undefined,
      url: undefined,
      deploymentId: undefined,
      passwordSecret: undefined,
      pendingPasswordSecret: undefined,
      readyAt: undefined,
      pendingKeyId: undefined,
      ...(keyRevoked ? { keyId: undefined, keyKind: undefined, keyRotatedAt: undefined } : {}),
    },
  };
};

export const STEPS: Readonly<Record<string, Step>> = {
  cleanup,
  deploy,
  "await-deployment": awaitDeployment,
  configure,
  verify,
  drain,
  "delete-resources": deleteResources,
};

/** The first step of each operation. */
export const FIRST_STEP = {
  provision: "deploy",
  provisionAfterFailure: "cleanup",
  deprovision: "drain",
} as const;
