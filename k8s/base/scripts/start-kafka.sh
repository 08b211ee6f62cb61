#!/bin/bash
# Starts one combined broker+controller of the KRaft cluster (the kafka StatefulSet).
# The image's own entrypoint writes into /opt/kafka; this one writes only to /tmp and
# the data volume, so the container can run with a read-only root filesystem.
# The node id is the pod's ordinal; the controller quorum is kafka-0..N-1, where N is
# KAFKA_BROKER_COUNT (kept equal to the StatefulSet's replicas; tests/k8s checks it).
set -euo pipefail

ordinal="${POD_NAME##*-}"
domain="kafka-headless.${POD_NAMESPACE}.svc.cluster.local"
voters=""
for ((i = 0; i < KAFKA_BROKER_COUNT; i++)); do
  voters="${voters:+${voters},}${i}@kafka-${i}.${domain}:9093"
done

config=/tmp/server.properties
cat >"${config}" <<PROPERTIES
process.roles=broker,controller
node.id=${ordinal}
controller.quorum.voters=${voters}
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
advertised.listeners=PLAINTEXT://${POD_NAME}.${domain}:9092
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=/var/lib/kafka/data/kraft-logs
# Topics are created by the kafka-create-topics Job with their partition counts; a
# metadata request must never create one with the broker's default instead.
auto.create.topics.enable=false
default.replication.factor=${KAFKA_REPLICATION_FACTOR}
min.insync.replicas=${KAFKA_MIN_INSYNC_REPLICAS}
offsets.topic.replication.factor=${KAFKA_REPLICATION_FACTOR}
transaction.state.log.replication.factor=${KAFKA_REPLICATION_FACTOR}
transaction.state.log.min.isr=${KAFKA_MIN_INSYNC_REPLICAS}
unclean.leader.election.enable=false
group.initial.rebalance.delay.ms=3000
PROPERTIES

# broker.rack: the zone of the node this pod runs on, where the cluster provides it
# (KAFKA_RACK comes from the pod's topology.kubernetes.io/zone label). Topics created
# afterwards get each partition's replicas in different zones.
if [[ -n "${KAFKA_RACK:-}" ]]; then
  echo "broker.rack=${KAFKA_RACK}" >>"${config}"
fi

/opt/kafka/bin/kafka-storage.sh format --ignore-formatted \
  --cluster-id "${KAFKA_CLUSTER_ID}" --config "${config}"
exec /opt/kafka/bin/kafka-server-start.sh "${config}"
