#!/usr/bin/env bash
# System tools some tests need, installed from Debian's archive only when they are missing:
#   promtool              (package `prometheus`)        -> tests/static checks deploy/prometheus
#   chromium, chromedriver (packages `chromium`, `chromium-driver`) -> the dashboard browser test
#   dovecot               (package `dovecot-imapd`)     -> the IMAP ingest test (a throwaway server)
#   wrk                   (package `wrk`)               -> `make bench` (the HTTP load generator)
#
# Idempotent and quiet: does nothing when every tool is present. Installs only when running as
# root with apt-get available; otherwise it prints what is missing and exits 0, so a build never
# fails here (the tests that need a missing tool skip with a clear reason instead).
# Services are never started by the install (a temporary policy-rc.d denies it when none exists).
set -uo pipefail

missing_pkgs=()
need() { # need <command> <debian package>
  command -v "$1" >/dev/null 2>&1 || missing_pkgs+=("$2")
}
need promtool prometheus
need chromium chromium
need chromedriver chromium-driver
need dovecot dovecot-imapd
need wrk wrk

if [ "${#missing_pkgs[@]}" -eq 0 ]; then
  exit 0
fi

# Debian packages may share a name across commands: keep each package once.
mapfile -t missing_pkgs < <(printf '%s\n' "${missing_pkgs[@]}" | sort -u)

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-deps: missing ${missing_pkgs[*]} (install them as root with" \
    "'apt-get install ${missing_pkgs[*]}'); tests that need them will be skipped" >&2
  exit 0
fi

policy=${POLICY_RC_D:-/usr/sbin/policy-rc.d}
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy"
  created_policy=1
fi
log=$(mktemp)
cleanup() {
  rm -f "$log"
  if [ "$created_policy" -eq 1 ]; then rm -f "$policy"; fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
echo "install-system-deps: installing ${missing_pkgs[*]}"
if ! apt-get update -qq >"$log" 2>&1; then
  tail -n 5 "$log" >&2
  echo "install-system-deps: apt-get update failed; still missing ${missing_pkgs[*]}" >&2
  exit 0
fi
if ! apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}" >"$log" 2>&1; then
  tail -n 5 "$log" >&2
  echo "install-system-deps: apt-get install failed; still missing ${missing_pkgs[*]}" >&2
  exit 0
fi
exit 0
