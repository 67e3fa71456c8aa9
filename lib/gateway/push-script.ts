/**
 * Renders the shell script the gateway consumer sends to the gateway VM through an Azure VM run
 * command (RunShellScript) to apply a rendered nginx.conf.
 *
 * The config travels gzip-compressed and base64-encoded inside a quoted here-document, so no byte
 * of it is ever interpreted by the shell (quotes, dollars and backslashes are safe) and a
 * 5,000-route config stays well inside the run-command script size limit.
 *
 * On the VM the script: decodes the config into a temp file next to the target (same file
 * system, so the final `mv` is atomic), checks its sha256, runs `nginx -t` on it, keeps a backup of
 * the current file, moves the new file into place and reloads nginx. If the reload fails the
 * backup is restored and nginx reloaded again. Any failure exits non-zero with a line starting
 * `SUPAFANA_GATEWAY_FAILED:`; success ends with `SUPAFANA_GATEWAY_APPLIED <sha256>`.
 *
 * The script is POSIX sh (it does not depend on bash).
 */
import { gzipSync } from "node:zlib";

import { gatewayConfigHash } from "./nginx.js";

export interface GatewayPushOptions {
  /** Where nginx reads its config, e.g. `/etc/nginx/nginx.conf`. */
  targetPath: string;
  /** Default `nginx`. */
  nginxBinary?: string;
  /** Shell command that makes nginx load the new file; default `systemctl reload-or-restart nginx`. */
  reloadCommand?: string;
  /** nginx prefix (`nginx -p`), for tests that run nginx out of a temp directory. */
  prefix?: string;
  /**
   * Files the config refers to (the sign-in njs module), written before `nginx -t`. Give them
   * content-addressed paths: a file the running config uses is then never changed in place.
   */
  assets?: readonly GatewayAsset[];
}

export interface GatewayAsset {
  path: string;
  content: string;
}

export const APPLIED_MARKER = "SUPAFANA_GATEWAY_APPLIED";
export const FAILED_MARKER = "SUPAFANA_GATEWAY_FAILED:";

const SAFE_PATH_RE = /^\/[A-Za-z0-9._\-/]+$/;
const BASE64_LINE = 76;

function checkPath(name: string, value: string): string {
  if (!SAFE_PATH_RE.test(value) || value.split("/").includes("..")) {
    throw new Error(
      `${name} must be an absolute path of [A-Za-z0-9._-/], got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** Single-quotes a value for POSIX sh. */
function shQuote(value: string): string {
  return `'${value.replace(/'/g, `'"'"'`)}'`;
}

/** Parses the final marker line of a run-command output; undefined when the push did not succeed. */
export function parseAppliedHash(output: string): string | undefined {
  const re = new RegExp(`^${APPLIED_MARKER} ([0-9a-f]{64})$`, "m");
  return re.exec(output)?.[1];
}

/** gzip (deterministic in Node: mtime 0) + base64, in lines. */
function encodePayload(text: string): string[] {
  const payload = gzipSync(Buffer.from(text, "utf8"), { level: 9 }).toString("base64");
  const lines: string[] = [];
  for (let i = 0; i < payload.length; i += BASE64_LINE)
    lines.push(payload.slice(i, i + BASE64_LINE));
  return lines;
}

export function renderGatewayPushScript(config: string, opts: GatewayPushOptions): string[] {
  const target = checkPath("targetPath", opts.targetPath);
  const nginx = opts.nginxBinary === undefined ? "nginx" : opts.nginxBinary;
  if (!/^[A-Za-z0-9._\-/]+$/.test(nginx))
    throw new Error("nginxBinary must be a plain command or path");
  const prefixFlags =
    opts.prefix === undefined ? "" : ` -p ${shQuote(checkPath("prefix", opts.prefix))}`;
  const reload = opts.reloadCommand ?? "systemctl reload-or-restart nginx";
  if (reload.includes("\n") || reload.trim() === "")
    throw new Error("reloadCommand must be one line");

  const sha = gatewayConfigHash(config);
  const payloadLines = encodePayload(config);
  const assetLines: string[] = [];
  (opts.assets ?? []).forEach((asset, i) => {
    const path = checkPath(`assets[${i}].path`, asset.path);
    const marker = `SUPAFANA_ASSET_${i}`;
    assetLines.push(
      `asset=${shQuote(path)}`,
      'mkdir -p "$(dirname "$asset")" || fail "could not create the directory of $asset"',
      `base64 -d <<'${marker}' | gunzip -c > "$asset.supafana-new" || fail "could not decode $asset"`,
      ...encodePayload(asset.content),
      marker,
      `[ "$(sha256sum "$asset.supafana-new" | cut -d" " -f1)" = ${gatewayConfigHash(asset.content)} ] || fail "checksum mismatch for $asset"`,
      'chmod 0644 "$asset.supafana-new" && mv -f "$asset.supafana-new" "$asset" || fail "could not install $asset"',
    );
  });

  return [
    "#!/bin/sh",
    "# Supafana gateway: apply a rendered nginx.conf (generated; see lib/gateway/push-script.ts).",
    "set -eu",
    "umask 022",
    `target=${shQuote(target)}`,
    'new="$target.supafana-new"',
    'backup="$target.supafana-prev"',
    `expected=${sha}`,
    `fail() { echo "${FAILED_MARKER} $*" >&2; rm -f "$new"; exit 1; }`,
    `reload_nginx() { ${reload}; }`,
    ...assetLines,
    'if [ -f "$target" ] && [ "$(sha256sum "$target" | cut -d" " -f1)" = "$expected" ]; then',
    `  echo "${APPLIED_MARKER} $expected"`,
    "  exit 0",
    "fi",
    'base64 -d > "$new.gz" <<\'SUPAFANA_PAYLOAD\' || fail "could not decode the config payload"',
    ...payloadLines,
    "SUPAFANA_PAYLOAD",
    'gunzip -c "$new.gz" > "$new" || { rm -f "$new.gz"; fail "could not decompress the config payload"; }',
    'rm -f "$new.gz"',
    'actual="$(sha256sum "$new" | cut -d" " -f1)"',
    '[ "$actual" = "$expected" ] || fail "config checksum mismatch: got $actual, want $expected"',
    `if ! check_output="$(${nginx}${prefixFlags} -t -q -c "$new" 2>&1)"; then`,
    '  echo "$check_output" >&2',
    '  fail "nginx -t rejected the new config; the current config is unchanged"',
    "fi",
    'if [ -f "$target" ]; then cp -p "$target" "$backup" || fail "could not back up $target"; fi',
    'mv -f "$new" "$target" || fail "could not move the new config into place"',
    "if ! reload_nginx; then",
    '  if [ -f "$backup" ]; then',
    '    cp -p "$backup" "$target" && reload_nginx || true',
    '    fail "nginx reload failed; previous config restored"',
    "  fi",
    '  fail "nginx reload failed and there was no previous config to restore"',
    "fi",
    `echo "${APPLIED_MARKER} $expected"`,
  ];
}
