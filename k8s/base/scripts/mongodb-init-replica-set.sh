#!/bin/bash
# postStart hook of the mongod container: makes the pod a one-member replica set (so
# transactions work) and creates the application's user. Idempotent: on a restart the
# set is already initiated and the user only gets its password re-synced from the
# Secret. It talks to mongod over localhost inside the pod, so no NetworkPolicy has to
# admit anything but the ledger and the consumer.
#
# On the first start the image's entrypoint runs a temporary mongod (no --replSet) to
# create the root user; rs.status() fails there with NoReplicationEnabled and the loop
# waits for the real server.
set -uo pipefail

deadline=$((SECONDS + 300))
until mongosh --quiet --host 127.0.0.1 --port 27017 --file /scripts/mongodb-init-replica-set.js; do
  if ((SECONDS > deadline)); then
    echo "replica set initiation did not finish in 300 s" >&2
    exit 1
  fi
  sleep 3
done
