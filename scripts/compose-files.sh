#!/usr/bin/env bash
# Print the `-f <file>` options of the compose files the running `cesar` project was started
# with (`docker compose ls` records them), so `make verify` runs against the same files as the
# stack: `up` with `-f compose.yaml -f compose.secure.yaml` is verified with both files.
# Prints nothing when the files are already chosen (COMPOSE_FILE, or -f in COMPOSE) or when no
# such project runs; Compose's defaults then apply.
set -euo pipefail
compose=${COMPOSE:-docker compose}
project=${COMPOSE_PROJECT_NAME:-cesar}
if [ -n "${COMPOSE_FILE:-}" ] || [[ " $compose " == *" -f "* || " $compose " == *" --file "* ]]; then
  exit 0
fi
listing=$($compose ls --all --format json 2>/dev/null) || exit 0
python3 - "$project" "$listing" <<'PY'
import json, shlex, sys
project, listing = sys.argv[1], sys.argv[2]
try:
    entries = json.loads(listing or "[]")
except ValueError:
    sys.exit(0)
for entry in entries or []:
    if entry.get("Name") == project and entry.get("ConfigFiles"):
        files = [f for f in entry["ConfigFiles"].split(",") if f]
        print(" ".join(f"-f {shlex.quote(f)}" for f in files))
        break
PY
