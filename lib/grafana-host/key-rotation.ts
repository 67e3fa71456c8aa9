/**
 * The run-command script that hands a Grafana host a new Supabase key without a gap:
 * - the key travels base64-encoded inside a quoted here-document (no shell expansion);
 * - it replaces Prometheus' password file atomically (write beside it, then rename; the file's
 *   directory is what the container mounts, so the rename is visible inside it);
 * - Prometheus reloads (SIGHUP to its container: no lifecycle endpoint needs to be open);
 * - the script then waits for the first scrape of the Supabase target that starts after the
 *   swap and succeeds only when that scrape is `up == 1`; a scrape that fails, or none within
 *   the deadline, restores the previous file, reloads again and reports the failure.
 * The outcome is one marker line the caller reads from the run command's output.
 */
import { HOST_PATHS, PROMETHEUS_UID } from "./cloud-init.js";
import { prometheusJobName } from "./prometheus.js";

export const KEY_APPLIED_MARKER = "SUPAFANA_KEY_APPLIED";
export const KEY_FAILED_MARKER = "SUPAFANA_KEY_FAILED";
/** The here-document delimiter around the key's base64. */
export const KEY_PAYLOAD_DELIMITER = "SUPAFANA_KEY";

export interface KeyRotationScriptOptions {
  /** Default: the host's key file. */
  keyFile?: string;
  /** Default `http://127.0.0.1:9090`. */
  prometheusUrl?: string;
  /** Default: SIGHUP to the Prometheus container. */
  reloadCommand?: string;
  /** Owner of the new file (`uid:gid`), or `null` to leave it to the writer; default Prometheus'. */
  owner?: string | null;
  /** How long to wait for the first scrape after the swap; default 150 s (2.5 scrape intervals). */
  deadlineSeconds?: number;
  /** Between two queries; default 5 s. */
  pollSeconds?: number;
}

const shQuote = (s: string) => `'${s.replace(/'/g, `'"'"'`)}'`;

function oneLine(name: string, value: string): string {
  if (value.includes("\n") || value.trim() === "") throw new Error(`${name} must be one line`);
  return value;
}

/** The script (one line per element, as Azure's RunShellScript takes it). */
export function renderKeyRotationScript(
  ref: string,
  key: string,
  opts: KeyRotationScriptOptions = {},
): string[] {
  if (!/^[A-Za-z0-9_\-.]+$/.test(key)) throw new Error("the key has unexpected characters");
  const keyFile = opts.keyFile ?? HOST_PATHS.serviceKey;
  if (!/^\/[A-Za-z0-9._\-/]+$/.test(keyFile)) throw new Error("keyFile must be an absolute path");
  const prom = oneLine("prometheusUrl", opts.prometheusUrl ?? "http://127.0.0.1:9090");
  if (!/^http:\/\/[A-Za-z0-9.:[\]-]+$/.test(prom))
    throw new Error("prometheusUrl must be http://host:port");
  const reload = oneLine(
    "reloadCommand",
    opts.reloadCommand ?? "docker kill --signal=HUP supafana-prometheus >/dev/null",
  );
  const owner = opts.owner === undefined ? `${PROMETHEUS_UID}:${PROMETHEUS_UID}` : opts.owner;
  if (owner !== null && !/^\d+:\d+$/.test(owner)) throw new Error("owner must be uid:gid");
  const deadline = opts.deadlineSeconds ?? 150;
  const poll = opts.pollSeconds ?? 5;
  if (!Number.isInteger(deadline) || deadline < 1) throw new Error("deadlineSeconds must be >= 1");
  if (!Number.isInteger(poll) || poll < 1) throw new Error("pollSeconds must be >= 1");
  const job = prometheusJobName(ref);
  const payload = Buffer.from(key, "utf8").toString("base64");

  return [
    "#!/bin/sh",
    "# Supafana Grafana host: swap the Supabase key (generated; see lib/grafana-host/key-rotation.ts).",
    "set -eu",
    "umask 077",
    `key_file=${shQuote(keyFile)}`,
    'new="$key_file.supafana-new"',
    'backup="$key_file.supafana-prev"',
    `prom=${shQuote(prom)}`,
    `job=${shQuote(job)}`,
    `fail() { echo "${KEY_FAILED_MARKER} $*"; rm -f "$new"; exit 1; }`,
    `reload_prometheus() { ${reload}; }`,
    "restore() {",
    '  if [ -f "$backup" ]; then mv -f "$backup" "$key_file"; reload_prometheus || true; fi',
    "}",
    // The number of series matching `query` in its answer (0 when none, -1 when unreadable).
    "matches() {",
    '  out="$(curl -fsS --max-time 10 -G --data-urlencode "query=$1" "$prom/api/v1/query" 2>/dev/null)" || { echo -1; return; }',
    '  case "$out" in',
    `    *'"result":[]'*) echo 0 ;;`,
    `    *'"result":[{'*) echo 1 ;;`,
    "    *) echo -1 ;;",
    "  esac",
    "}",
    `base64 -d > "$new" <<'${KEY_PAYLOAD_DELIMITER}' || fail "could not decode the key"`,
    payload,
    KEY_PAYLOAD_DELIMITER,
    '[ -s "$new" ] || fail "the decoded key is empty"',
    ...(owner !== null
      ? [`chown ${owner} "$new" || fail "could not give the key file to Prometheus"`]
      : []),
    'chmod 0600 "$new"',
    'if [ -f "$key_file" ]; then cp -p "$key_file" "$backup" || fail "could not back up the key file"; fi',
    "started=$(date +%s)",
    'mv -f "$new" "$key_file" || fail "could not move the new key into place"',
    'reload_prometheus || { restore; fail "Prometheus did not reload; the previous key is back"; }',
    `deadline=$((started + ${deadline}))`,
    'while [ "$(date +%s)" -le "$deadline" ]; do',
    // Only scrapes that started after the swap count. `timestamp()` gives a sample's own time
    // only when applied to a plain selector, so the freshness test and the value test are
    // joined with `and` (which matches series without their metric name).
    '  if [ "$(matches "timestamp(up{job=\\"$job\\"}) > $started and up{job=\\"$job\\"} == 1")" = 1 ]; then',
    '    rm -f "$backup"',
    `    echo "${KEY_APPLIED_MARKER}"`,
    "    exit 0",
    "  fi",
    '  if [ "$(matches "timestamp(up{job=\\"$job\\"}) > $started and up{job=\\"$job\\"} == 0")" = 1 ]; then',
    "    restore",
    '    fail "the first scrape of the Supabase metrics with the new key failed (up == 0); the previous key is back"',
    "  fi",
    `  sleep ${poll}`,
    "done",
    "restore",
    `fail "no scrape of the Supabase metrics within ${deadline} s of the swap; the previous key is back"`,
  ];
}

/** The outcome a rotation script reported in the run command's output. */
export function keyRotationOutcome(output: string): { ok: true } | { ok: false; message: string } {
  if (output.includes(KEY_APPLIED_MARKER)) return { ok: true };
  const line = output.split("\n").find((l) => l.includes(KEY_FAILED_MARKER));
  const message = line
    ? line.slice(line.indexOf(KEY_FAILED_MARKER) + KEY_FAILED_MARKER.length).trim()
    : "the host did not report an outcome";
  return { ok: false, message: message.slice(0, 300) };
}
