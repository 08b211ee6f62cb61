#!/bin/bash
# postStart hook of the mongod container: makes the pod a one-member replica set (so
# transactions work) on its first start. On every later start the set is already
# initiated and the hook exits without logging in (mongodb-init-replica-set.js), so
# rotating the root password cannot lock the pod in a crash loop. Users are managed by
# the mongodb-users CronJob. It talks to mongod over localhost inside the pod.
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
