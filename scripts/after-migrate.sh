#!/usr/bin/env bash
# Run a command once `cesar-migrate status` says the schema is up to date (make dev's ordering).
set -euo pipefail
migrate=.venv/bin/cesar-migrate
[ -x "$migrate" ] || migrate="uv run cesar-migrate"
for _ in $(seq 1 120); do
  if $migrate status >/dev/null 2>&1; then exec "$@"; fi
  sleep 1
done
echo "schema still not up to date after 120s; is the migrator failing?" >&2
exit 1
