#!/usr/bin/env bash
# Makes sure the system tools the unit tests validate against are installed:
#   nginx    -> `nginx -t` on rendered gateway configs
#   libnginx-mod-http-js -> the njs module the gateway's Grafana sign-in runs in (njs 0.7 on
#               Debian 12), loaded by the real-nginx tests with `load_module`
#   promtool -> `promtool check config|rules` on rendered Prometheus config and alert expressions
#   chromium -> the browser tests of the web app (playwright-core drives Debian's Chromium)
# (Debian bookworm: `promtool` ships in the `prometheus` package.)
#
# Idempotent: does nothing when the binaries and the njs module are already there. Needs root to install.
# Services are never left running: package maintainer scripts are told not to start them
# (policy-rc.d), and any nginx/prometheus process that appeared during the install is stopped
# by its process id.
set -euo pipefail

log() { printf 'ensure-system-packages: %s\n' "$*"; }

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
[ -f /usr/lib/nginx/modules/ngx_http_js_module.so ] || missing+=(libnginx-mod-http-js)

if [ "${#missing[@]}" -eq 0 ]; then
  log "nginx, the njs module, promtool and chromium already present; nothing to do"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  log "missing packages: ${missing[*]}; run as root to install them" >&2
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  log "missing packages: ${missing[*]}; apt-get not available, install them manually" >&2
  exit 1
fi

# Process ids of the daemons before installing, so only ones started by the install are stopped.
pids_of() { pgrep -x "$1" 2>/dev/null | sort || true; }
before_nginx="$(pids_of nginx)"
before_prometheus="$(pids_of prometheus)"

# Stop maintainer scripts from starting services (exit 101 = action forbidden).
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 0755 /usr/sbin/policy-rc.d
  created_policy=1
  log "installed a temporary /usr/sbin/policy-rc.d so services are not started"
fi
cleanup() {
  if [ "$created_policy" -eq 1 ]; then
    rm -f /usr/sbin/policy-rc.d
  fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
log "apt-get update"
apt-get -o DPkg::Lock::Timeout=600 update -qq
log "apt-get install --no-install-recommends ${missing[*]}"
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"

# Make sure nothing was left running or enabled.
for unit in nginx prometheus; do
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl stop "$unit" >/dev/null 2>&1 || true
    systemctl disable "$unit" >/dev/null 2>&1 || true
  elif command -v service >/dev/null 2>&1 && [ -x "/etc/init.d/$unit" ]; then
    service "$unit" stop >/dev/null 2>&1 || true
  fi
done

stop_new() {
  local name="$1" before="$2" pid
  for pid in $(pids_of "$name"); do
    if ! grep -qx "$pid" <<<"$before"; then
      log "stopping $name (pid $pid) started by the install"
      kill "$pid" 2>/dev/null || true
    fi
  done
}
stop_new nginx "$before_nginx"
stop_new prometheus "$before_prometheus"

nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
log "nginx: $("$nginx_bin" -v 2>&1)"
log "promtool: $(promtool --version 2>&1 | head -n 1)"
log "chromium: $(chromium --version 2>/dev/null || /usr/bin/chromium --version 2>&1 | head -n 1)"
