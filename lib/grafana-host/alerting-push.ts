/**
 * The run-command script that replaces a Grafana host's alerting provisioning (rules, contact
 * point, notification policy: one file, rendered whole by `renderAlertRules`):
 * - the document travels base64-encoded inside a quoted here-document (no shell expansion) and
 *   is checked against its sha256 before anything on the host changes;
 * - a host that already serves exactly this document answers at once (nothing to reload);
 * - the file is replaced atomically (written beside it, then renamed; Grafana's container mounts
 *   the provisioning directory, so the rename is visible inside it), the previous one kept;
 * - Grafana reloads its alerting provisioning through its admin API on the VM itself
 *   (`http://127.0.0.1:3000`, basic auth with the host's admin password, sent from a 0600 header
 *   file, never on a command line); a refused reload puts the previous file back, reloads again
 *   and reports the failure, so the host keeps serving the previous alerting.
 * The outcome is one marker line the caller reads from the run command's output.
 */
import { createHash } from "node:crypto";

import { HOST_PATHS } from "./cloud-init.js";

export const ALERTING_APPLIED_MARKER = "SUPAFANA_ALERTING_APPLIED";
export const ALERTING_FAILED_MARKER = "SUPAFANA_ALERTING_FAILED";
/** The here-document delimiter around the document's base64. */
export const ALERTING_PAYLOAD_DELIMITER = "SUPAFANA_ALERTING";
/** Where the alerting provisioning file lives on the host. */
export const ALERTING_FILE = `${HOST_PATHS.provisioning}/alerting/supafana.yaml`;

export interface AlertingPushOptions {
  /** Default: {@link ALERTING_FILE}. */
  file?: string;
  /** Default `http://127.0.0.1:3000`: the VM's own Grafana, never the public gateway. */
  grafanaUrl?: string;
  /** Default: the host's admin password file. */
  passwordFile?: string;
}

const shQuote = (s: string) => `'${s.replace(/'/g, `'"'"'`)}'`;

export const alertingHash = (document: string): string =>
  createHash("sha256").update(document, "utf8").digest("hex");

function absolutePath(name: string, value: string): string {
  if (!/^\/[A-Za-z0-9._\-/]+$/.test(value)) throw new Error(`${name} must be an absolute path`);
  return value;
}

/** The script (one line per element, as Azure's RunShellScript takes it). */
export function renderAlertingPushScript(
  document: string,
  opts: AlertingPushOptions = {},
): string[] {
  const file = absolutePath("file", opts.file ?? ALERTING_FILE);
  const passwordFile = absolutePath("passwordFile", opts.passwordFile ?? HOST_PATHS.adminPassword);
  const grafana = opts.grafanaUrl ?? "http://127.0.0.1:3000";
  if (!/^http:\/\/(127\.0\.0\.1|localhost|\[::1\]):\d+$/.test(grafana))
    throw new Error("grafanaUrl must be the VM's own Grafana (http://127.0.0.1:port)");
  const sha256 = alertingHash(document);
  const payload =
    Buffer.from(document, "utf8")
      .toString("base64")
      .match(/.{1,76}/g) ?? [];
  return [
    "#!/bin/sh",
    "# Supafana Grafana host: replace the alerting provisioning (generated; see lib/grafana-host/alerting-push.ts).",
    "set -eu",
    "umask 022",
    `file=${shQuote(file)}`,
    `expected=${sha256}`,
    `grafana=${shQuote(grafana)}`,
    `password_file=${shQuote(passwordFile)}`,
    'new="$file.supafana-new"',
    'backup="$file.supafana-prev"',
    'work="$(mktemp -d)"',
    'trap \'rm -rf "$work"; rm -f "$new"\' EXIT',
    `fail() { echo "${ALERTING_FAILED_MARKER} $*"; exit 1; }`,
    // POST the reload with the admin password in a header file only root can read.
    "reload() {",
    '  ( umask 077; printf "Authorization: Basic %s\\n" "$(printf "admin:%s" "$(cat "$password_file")" | base64 | tr -d "\\n")" > "$work/auth" )',
    '  code="$(curl -sS --max-time 60 -o "$work/reload.out" -w "%{http_code}" -X POST -H @"$work/auth" "$grafana/api/admin/provisioning/alerting/reload" 2>"$work/reload.err")" || code=000',
    '  rm -f "$work/auth"',
    '  [ "$code" = 200 ]',
    "}",
    "why() { cat \"$work/reload.out\" \"$work/reload.err\" 2>/dev/null | head -c 300 | tr '\\n' ' '; }",
    'install -d -m 0755 "$(dirname "$file")" || fail "could not create the provisioning directory"',
    `base64 -d > "$new" <<'${ALERTING_PAYLOAD_DELIMITER}' || fail "could not decode the document"`,
    ...payload,
    ALERTING_PAYLOAD_DELIMITER,
    'actual="$(sha256sum "$new" | cut -c1-64)"',
    '[ "$actual" = "$expected" ] || fail "the document arrived damaged (sha256 $actual)"',
    'if [ -f "$file" ] && [ "$(sha256sum "$file" | cut -c1-64)" = "$expected" ]; then',
    `  echo "${ALERTING_APPLIED_MARKER} $expected unchanged"`,
    "  exit 0",
    "fi",
    'chmod 0644 "$new"',
    "had_previous=0",
    'if [ -f "$file" ]; then cp -p "$file" "$backup" || fail "could not keep the previous file"; had_previous=1; fi',
    'mv -f "$new" "$file" || fail "could not move the new document into place"',
    "if reload; then",
    '  rm -f "$backup"',
    `  echo "${ALERTING_APPLIED_MARKER} $expected"`,
    "  exit 0",
    "fi",
    'reason="Grafana refused the reload (HTTP $code): $(why)"',
    'if [ "$had_previous" = 1 ]; then mv -f "$backup" "$file"; else rm -f "$file"; fi',
    "reload || true",
    'fail "$reason; the previous alerting provisioning is back"',
  ];
}

/** Decodes the document a push script carries (for the sandbox host); undefined if not one. */
export function decodeAlertingPushScript(
  script: readonly string[],
): { document: string; sha256: string } | undefined {
  const start = script.findIndex((l) => l.includes(`<<'${ALERTING_PAYLOAD_DELIMITER}'`));
  const end = script.findIndex((l, i) => i > start && l === ALERTING_PAYLOAD_DELIMITER);
  const expected = script.find((l) => l.startsWith("expected="))?.slice("expected=".length);
  if (start < 0 || end < 0 || !expected) return undefined;
  const document = Buffer.from(script.slice(start + 1, end).join(""), "base64").toString("utf8");
  const sha256 = alertingHash(document);
  return sha256 === expected ? { document, sha256 } : undefined;
}

export type AlertingPushOutcome =
  { ok: true; sha256: string | undefined } | { ok: false; message: string };

/** The outcome a push script reported in the run command's output. */
export function alertingPushOutcome(output: string): AlertingPushOutcome {
  const applied = output.split("\n").find((l) => l.includes(ALERTING_APPLIED_MARKER));
  if (applied) {
    const sha = /[0-9a-f]{64}/.exec(applied.slice(applied.indexOf(ALERTING_APPLIED_MARKER)));
    return { ok: true, sha256: sha?.[0] };
  }
  const line = output.split("\n").find((l) => l.includes(ALERTING_FAILED_MARKER));
  const message = line
    ? line.slice(line.indexOf(ALERTING_FAILED_MARKER) + ALERTING_FAILED_MARKER.length).trim()
    : "the host did not report an outcome";
  return { ok: false, message: message.slice(0, 400) };
}
