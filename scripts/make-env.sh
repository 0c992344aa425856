#!/usr/bin/env bash
# `make up`'s first step: create .env from .env.example when it does not exist, with a random
# REDIS_PASSWORD (compose requires one). An existing .env is never changed; one without
# REDIS_PASSWORD gets a line saying how to add it.
set -euo pipefail
cd "$(dirname "$0")/.."
env_file=${1:-.env}
if [ ! -f "$env_file" ]; then
  password=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
  sed "s/^REDIS_PASSWORD=.*/REDIS_PASSWORD=${password}/" .env.example >"$env_file"
  chmod 600 "$env_file"
  echo "created $env_file from .env.example with a random REDIS_PASSWORD: review it"
elif [ -z "${REDIS_PASSWORD:-}" ] && ! grep -q '^REDIS_PASSWORD=.' "$env_file"; then
  echo "$env_file has no REDIS_PASSWORD; add one:" \
    "echo \"REDIS_PASSWORD=\$(openssl rand -hex 24)\" >> $env_file" >&2
  exit 1
fi
