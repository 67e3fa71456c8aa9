/**
 * An instance as the app holds it: one row of the `instances` table per (org, project ref), the
 * single source of truth for a project's Grafana. Persistence is `./store.ts`, the lifecycle
 * (states, operations, steps) `./lifecycle.ts`, the API view `./view.ts`.
 */
import type { InstanceState, Operation, Position } from "./lifecycle.js";

export const PLANS = ["trial", "paid", "free"] as const;
export type Plan = (typeof PLANS)[number];
export const KEY_KINDS = ["dedicated", "legacy"] as const;
export type KeyKind = (typeof KEY_KINDS)[number];

export interface Instance {
  org: string;
  ref: string;
  state: InstanceState;
  /** The current operation; messages of any other operation are stale and ignored. */
  operationId: string;
  operation: Operation;
  /** The step of the current operation (or "done" / "failed") and how many times it has run. */
  step: Position;
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
  /**
   * The host version the instance runs (template spec version and pinned images, see
   * `hostVersionOf`), and the one the current operation deploys until it is Running.
   */
  hostVersion?: string | undefined;
  pendingHostVersion?: string | undefined;
  /** The template spec version the current operation deploys (unset: the configured one). */
  templateSpecId?: string | undefined;
  /** The alerting configuration (version, hash) cloud-init gave the host this operation deploys. */
  bootAlertingVersion?: number | undefined;
  bootAlertingHash?: string | undefined;
  /** When the host was last replaced because it stopped answering. */
  healedAt?: Date | undefined;
  /** When the newest daily snapshot of the data disk was started. */
  lastSnapshotAt?: Date | undefined;
  /** The snapshot the data disk was restored from by the current or last replacement. */
  restoredFromSnapshot?: string | undefined;
  /** Health probes of a Running host: first failure of the current run of failures, and count. */
  unhealthySince?: Date | undefined;
  failedProbes?: number | undefined;
  /**
   * Follow-ups of the last transition not yet confirmed done (comma-separated), so a crash
   * between saving a transition and running its follow-ups is healed by the next delivery.
   */
  pendingFollowUps?: string | undefined;
  /** Optimistic concurrency tag of the row this was read from. */
  etag?: string | undefined;
}
