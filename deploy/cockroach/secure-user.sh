#!/bin/bash
# One-shot (compose.secure.yaml, service `cockroach-user`): make sure the application's database
# and password user exist, and (re)set the password from COCKROACH_PASSWORD. Idempotent: safe on
# every start, and the way to rotate the password (change .env, `docker compose up -d`).
# Connects as root with the client certificate; the password never appears in a command line.
set -euo pipefail

user=${COCKROACH_USER:?COCKROACH_USER is not set}
password=${COCKROACH_PASSWORD:?COCKROACH_PASSWORD is not set}
database=${COCKROACH_DATABASE:-cesar}
host=${COCKROACH_HOST:-cockroach:26257}

case "$user$database" in
  *[!A-Za-z0-9_]*) echo "cockroach-user: COCKROACH_USER and COCKROACH_DATABASE must be [A-Za-z0-9_]" >&2; exit 2 ;;
esac
# The services get the password inside COCKROACH_DB_URL, unencoded (compose cannot encode):
# characters such as @ / # ? : % or quotes would break the URL or the SQL below, so only URL-safe
# ones are accepted. `openssl rand -hex 24` gives a good one.
case "$password" in
  *[!A-Za-z0-9._~-]*) echo "cockroach-user: COCKROACH_PASSWORD may only hold letters, digits and - . _ ~ (it is part of a URL); e.g. openssl rand -hex 24" >&2; exit 2 ;;
esac
if [ "${#password}" -lt 16 ]; then
  echo "cockroach-user: COCKROACH_PASSWORD must be at least 16 characters" >&2
  exit 2
fi

# The SQL goes through stdin, so the password is not visible in `ps` inside the container.
cockroach sql --certs-dir=/cockroach-certs --host="$host" <<SQL
CREATE DATABASE IF NOT EXISTS ${database};
CREATE USER IF NOT EXISTS ${user};
ALTER USER ${user} WITH PASSWORD '${password}';
GRANT ALL ON DATABASE ${database} TO ${user};
GRANT admin TO ${user};
SQL
echo "cockroach-user: user ${user} ready on database ${database}"
