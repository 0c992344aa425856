#!/bin/bash
# One-shot (compose.secure.yaml, service `cockroach-certs`): create the CockroachDB CA, the node
# certificate and the root client certificate when they do not exist yet. Idempotent: existing
# files are kept, so restarting the stack never rotates certificates by accident.
#
#   /cockroach-ca-key   the CA key (its own volume: only this service ever mounts it)
#   /cockroach-certs    ca.crt, node.crt/key, client.root.crt/key for the cockroach service
#   /cockroach-ca       ca.crt only, mounted read-only by the application containers
set -euo pipefail

certs=/cockroach-certs
ca_key=/cockroach-ca-key/ca.key
public=/cockroach-ca
node_hosts=${COCKROACH_NODE_HOSTS:-cockroach localhost 127.0.0.1}

if [ ! -f "$certs/ca.crt" ]; then
  echo "cockroach-certs: creating the CA"
  cockroach cert create-ca --certs-dir="$certs" --ca-key="$ca_key"
fi
if [ ! -f "$certs/node.crt" ]; then
  echo "cockroach-certs: creating the node certificate for: $node_hosts"
  # shellcheck disable=SC2086 # one argument per host name
  cockroach cert create-node $node_hosts --certs-dir="$certs" --ca-key="$ca_key"
fi
if [ ! -f "$certs/client.root.crt" ]; then
  echo "cockroach-certs: creating the root client certificate"
  cockroach cert create-client root --certs-dir="$certs" --ca-key="$ca_key"
fi

cp "$certs/ca.crt" "$public/ca.crt"
chmod 0644 "$public/ca.crt"
echo "cockroach-certs: certificates ready"
