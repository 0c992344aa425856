#!/bin/bash
# One-shot (compose.cluster.yaml, service `cockroach-init`): initialise the three-node cluster
# once, then make sure the application database exists. Idempotent: a cluster that is already
# initialised is fine, so the service succeeds on every `docker compose up`.
set -euo pipefail

host=${COCKROACH_HOST:-cockroach:26257}
database=${COCKROACH_DATABASE:-cesar}
case "$database" in
  *[!A-Za-z0-9_]*) echo "cockroach-init: COCKROACH_DATABASE must be [A-Za-z0-9_]" >&2; exit 2 ;;
esac

for attempt in $(seq 1 60); do
  if out=$(cockroach init --insecure --host="$host" 2>&1); then
    echo "cockroach-init: cluster initialised"
    break
  fi
  if grep -q "already been initialized" <<<"$out"; then
    echo "cockroach-init: cluster already initialised"
    break
  fi
  if [ "$attempt" -eq 60 ]; then
    echo "cockroach-init: giving up: $out" >&2
    exit 1
  fi
  sleep 2
done

for attempt in $(seq 1 60); do
  if cockroach sql --insecure --host="$host" -e "CREATE DATABASE IF NOT EXISTS ${database}"; then
    echo "cockroach-init: database ${database} ready"
    exit 0
  fi
  [ "$attempt" -eq 60 ] && exit 1
  sleep 2
done
