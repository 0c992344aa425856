#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis the tests use are reachable, starting them if we can.
# Order: URLs given in TEST_DATABASE_URL / TEST_REDIS_URL are used as they are; otherwise the
# loopback services (started with this machine's service commands when installed but stopped).
# Where only Docker is available, `make test-cockroach` runs the suite on compose.test.yaml
# (CockroachDB and Redis on their own ports) instead.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_up() { python3 - "$1" <<'PY'
import socket, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
try:
    socket.create_connection((u.hostname or "127.0.0.1", u.port or 5432), timeout=2).close()
except OSError:
    sys.exit(1)
PY
}
redis_up() { python3 - "$1" <<'PY'
import socket, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
try:
    s = socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379), timeout=2)
    s.sendall(b"PING\r\n"); ok = s.recv(16).startswith(b"+PONG"); s.close()
except OSError:
    ok = False
sys.exit(0 if ok else 1)
PY
}
wait_for() { for _ in $(seq 1 60); do "$@" && return 0; sleep 0.5; done; return 1; }

DB_URL=${TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
REDIS=${TEST_REDIS_URL:-redis://127.0.0.1:6379/0}

if ! pg_up "$DB_URL"; then
  if [ -z "${TEST_DATABASE_URL:-}" ] && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  wait_for pg_up "$DB_URL" || { echo "PostgreSQL is not reachable at ${DB_URL}; set TEST_DATABASE_URL, or run \`make test-cockroach\` on a Docker host" >&2; exit 1; }
fi

if ! redis_up "$REDIS"; then
  if [ -z "${TEST_REDIS_URL:-}" ] && command -v redis-server >/dev/null; then
    echo "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  fi
  wait_for redis_up "$REDIS" || { echo "Redis is not reachable at ${REDIS}; set TEST_REDIS_URL" >&2; exit 1; }
fi
echo "services: PostgreSQL and Redis reachable"
