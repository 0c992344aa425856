#!/usr/bin/env bash
# `make dev`: every service as a local process (Procfile.dev) against the database and Redis
# exported in this shell. Steps, each printed as it runs:
#   1. apply the migrations (so a key can be stored before the services start);
#   2. without API_KEY, create or reuse the local development key (`cesar-dev-key`) and print it:
#      the dashboard reads API_KEY when it starts;
#   3. start honcho through scripts/dev_honcho.py (no .env read, worker grace period kept).
# Defaults: services on DEV_BIND_ADDRESS=127.0.0.1; the worker and the dashboard reach the local
# proxy at DEV_PROXY_URL; the proxy reaches Ollama at OLLAMA_URL (default 127.0.0.1:11434).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin

if [ -z "${DATABASE_URL:-}${COCKROACH_DB_URL:-}" ]; then
  echo "make dev: export DATABASE_URL (or COCKROACH_DB_URL) first, e.g." \
    "export DATABASE_URL=postgresql://postgres@localhost:5432/cesar" >&2
  exit 2
fi
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
export DEV_BIND_ADDRESS=${DEV_BIND_ADDRESS:-127.0.0.1}
export PROXY_PORT=${PROXY_PORT:-11435}
export DEV_PROXY_URL=${DEV_PROXY_URL:-http://127.0.0.1:${PROXY_PORT}}
export DEV_OLLAMA_URL=${OLLAMA_URL:-http://127.0.0.1:11434}
export API_URL=${API_URL:-http://127.0.0.1:${API_PORT:-8000}}

echo "make dev: $bin/cesar-migrate apply --wait 60"
"$bin/cesar-migrate" apply --wait 60

# A placeholder (an exported copy of .env.example) counts as no key.
case "${API_KEY:-}" in *changeme* | *change-me* | *placeholder* | *example*) API_KEY= ;; esac
if [ -z "${API_KEY:-}" ]; then
  API_KEY=$("$bin/cesar-dev-key")
  export API_KEY
  echo "make dev: API_KEY=$API_KEY  (local development key, kept in .cesar-dev/api-key;" \
    "export it to use it with curl)"
fi

echo "make dev: services on $DEV_BIND_ADDRESS; worker and dashboard use the proxy at" \
  "$DEV_PROXY_URL; the proxy uses Ollama at $DEV_OLLAMA_URL"
exec "$bin/python" scripts/dev_honcho.py -f Procfile.dev "$@"
