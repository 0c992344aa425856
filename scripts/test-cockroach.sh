#!/usr/bin/env bash
# `make test-cockroach`: the whole suite against CockroachDB (and Redis) from compose.test.yaml.
#   - needs a Docker engine; without one it says so in one line and exits 2;
#   - starts only what is missing: a Redis given by TEST_REDIS_URL is used as it is;
#   - its own loopback ports (CESAR_TEST_COCKROACH_PORT 26258, CESAR_TEST_REDIS_PORT 6380), so a
#     running stack or the machine's PostgreSQL/Redis are not in the way;
#   - removes what it started when the run ends (KEEP_TEST_STACK=1 keeps it);
#   - prints the engine's version first, so the output can be pasted into an issue as it is.
# Arguments are passed to pytest (default: the whole suite).
set -euo pipefail
cd "$(dirname "$0")/.."
compose=(docker compose -f compose.test.yaml)

if ! command -v docker >/dev/null 2>&1; then
  echo "make test-cockroach: no Docker here (the docker command is not installed); it needs a Docker engine to start compose.test.yaml" >&2
  exit 2
fi
if ! docker info >/dev/null 2>&1; then
  echo "make test-cockroach: the Docker engine does not answer (docker info failed); start it, or run on a Docker host" >&2
  exit 2
fi

export CESAR_TEST_COCKROACH_PORT=${CESAR_TEST_COCKROACH_PORT:-26258}
export CESAR_TEST_REDIS_PORT=${CESAR_TEST_REDIS_PORT:-6380}
services=(cockroach)
[ -n "${TEST_REDIS_URL:-}" ] || services+=(redis)

started=()
for service in "${services[@]}"; do
  if [ -z "$("${compose[@]}" ps --status running --quiet "$service" 2>/dev/null)" ]; then
    started+=("$service")
  fi
done
cleanup() {
  if [ "${#started[@]}" -gt 0 ] && [ -z "${KEEP_TEST_STACK:-}" ]; then
    "${compose[@]}" rm --force --stop --volumes "${started[@]}" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
if [ "${#started[@]}" -gt 0 ]; then
  echo "make test-cockroach: starting ${started[*]} from compose.test.yaml"
  "${compose[@]}" up -d --wait "${started[@]}"
fi

export TEST_ENGINE=cockroach
export TEST_DATABASE_URL=${TEST_COCKROACH_URL:-postgresql://postgres@127.0.0.1:${CESAR_TEST_COCKROACH_PORT}/postgres?sslmode=disable}
export TEST_REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:${CESAR_TEST_REDIS_PORT}/0}
echo "make test-cockroach: $("${compose[@]}" exec -T cockroach cockroach version --build-tag 2>/dev/null || echo 'CockroachDB')" \
  "at 127.0.0.1:${CESAR_TEST_COCKROACH_PORT}, Redis at ${TEST_REDIS_URL}"
# `.venv/bin/pytest` directly so the exit code and output are pytest's own.
.venv/bin/pytest "$@"
