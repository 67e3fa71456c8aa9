/**
 * Sandbox only: the projects' Grafana VMs as far as their alerting is concerned. The ARM
 * simulator hands run commands aimed at `grafana-<ref>` here; an alerting push script is decoded
 * (its sha256 checked, as the real script does), the document checked the way Grafana's file
 * provisioning would refuse it (YAML, every rule's condition naming one of its queries), and kept
 * as that host's current alerting provisioning. A refused push leaves the previous document in
 * place, like the real script's rollback. Anything else is passed on (`fallback`).
 */
import { parse } from "yaml";

import {
  ALERTING_APPLIED_MARKER,
  ALERTING_FAILED_MARKER,
  ALERTING_PAYLOAD_DELIMITER,
  decodeAlertingPushScript,
} from "../lib/grafana-host/alerting-push.js";
import type { RunCommandExecutor } from "./simulators/arm.js";

export interface HostProvisioning {
  ref: string;
  /** The alerting provisioning file as pushed (YAML). */
  document: string;
  sha256: string;
  appliedAt: string;
  /** Pushes this host has applied (an unchanged document does not count). */
  pushes: number;
}

export interface SandboxGrafanaHosts {
  /** Handles alerting pushes, passes any other script to `fallback`. */
  executor(fallback: RunCommandExecutor): RunCommandExecutor;
  provisioning(ref: string): HostProvisioning | undefined;
  /** Alerting push scripts received per ref (applied, unchanged and refused). */
  received(ref: string): number;
  /** The next `count` pushes (to `ref`, or to any host) fail as if Grafana refused the reload. */
  failNextPushes(count: number, ref?: string): void;
}

const refOfVm = (vmName: string): string | undefined => /^grafana-([a-z]{20})$/.exec(vmName)?.[1];

/** Why Grafana's provisioning would refuse the document, or undefined. */
export function refuseReason(document: string): string | undefined {
  let doc: unknown;
  try {
    doc = parse(document);
  } catch (err) {
    return `invalid YAML: ${err instanceof Error ? err.message.split("\n")[0] : "unknown"}`;
  }
  if (typeof doc !== "object" || doc === null) return "not a provisioning document";
  const d = doc as { apiVersion?: unknown; groups?: unknown };
  if (d.apiVersion !== 1) return "apiVersion must be 1";
  if (!Array.isArray(d.groups)) return "no rule groups";
  for (const g of d.groups as Array<{ rules?: unknown }>) {
    if (!Array.isArray(g.rules)) return "a group without rules";
    for (const r of g.rules as Array<{ uid?: string; condition?: string; data?: unknown }>) {
      const refIds = Array.isArray(r.data)
        ? (r.data as Array<{ refId?: string }>).map((q) => q.refId)
        : [];
      if (!r.condition || !refIds.includes(r.condition))
        return `rule ${r.uid ?? "?"}: condition ${r.condition ?? "(none)"} is not one of its queries`;
    }
  }
  return undefined;
}

export function createSandboxGrafanaHosts(
  clock: () => Date = () => new Date(),
): SandboxGrafanaHosts {
  const hosts = new Map<string, HostProvisioning>();
  const received = new Map<string, number>();
  const failing = new Map<string, number>();
  const ANY = "*";

  const takeFailure = (ref: string): boolean => {
    for (const key of [ref, ANY]) {
      const n = failing.get(key) ?? 0;
      if (n > 0) {
        failing.set(key, n - 1);
        return true;
      }
    }
    return false;
  };
  const failed = (why: string) =>
    Promise.resolve({ exitCode: 1, stdout: `${ALERTING_FAILED_MARKER} ${why}\n`, stderr: "" });

  return {
    executor: (fallback) => (vmName, script, parameters) => {
      const ref = refOfVm(vmName);
      if (!ref || !script.some((l) => l.includes(`<<'${ALERTING_PAYLOAD_DELIMITER}'`)))
        return fallback(vmName, script, parameters);
      received.set(ref, (received.get(ref) ?? 0) + 1);
      const decoded = decodeAlertingPushScript(script);
      if (!decoded) return failed("the document arrived damaged");
      const current = hosts.get(ref);
      if (current?.sha256 === decoded.sha256) {
        return Promise.resolve({
          exitCode: 0,
          stdout: `${ALERTING_APPLIED_MARKER} ${decoded.sha256} unchanged\n`,
          stderr: "",
        });
      }
      if (takeFailure(ref))
        return failed(
          "Grafana refused the reload (HTTP 500): simulated failure; the previous alerting provisioning is back",
        );
      const refused = refuseReason(decoded.document);
      if (refused)
        return failed(
          `Grafana refused the reload (HTTP 400): ${refused}; the previous alerting provisioning is back`,
        );
      hosts.set(ref, {
        ref,
        document: decoded.document,
        sha256: decoded.sha256,
        appliedAt: clock().toISOString(),
        pushes: (current?.pushes ?? 0) + 1,
      });
      return Promise.resolve({
        exitCode: 0,
        stdout: `${ALERTING_APPLIED_MARKER} ${decoded.sha256}\n`,
        stderr: "",
      });
    },
    provisioning: (ref) => {
      const h = hosts.get(ref);
      return h ? { ...h } : undefined;
    },
    received: (ref) => received.get(ref) ?? 0,
    failNextPushes: (count, ref) => {
      failing.set(ref ?? ANY, count);
    },
  };
}
