#!/bin/bash
# Creates the purchases topic and its dead-letter topic with explicit partition counts,
# idempotently (--if-not-exists), with Kafka's own tooling. Run by the
# kafka-create-topics CronJob (every 10 minutes, and on demand). An existing topic with another partition count is reported
# as a failure rather than altered: adding partitions moves keys (one user's purchases
# would lose their order) and the consumer HPA's maximum is tied to the count.
set -euo pipefail

topics=/opt/kafka/bin/kafka-topics.sh
bootstrap="${KAFKA_BOOTSTRAP_SERVERS}"

until "${topics}" --bootstrap-server "${bootstrap}" --list >/dev/null; do
  echo "waiting for Kafka at ${bootstrap} ..."
  sleep 5
done

create() {
  local topic="$1" partitions="$2"
  shift 2
  local configs=("min.insync.replicas=${KAFKA_MIN_INSYNC_REPLICAS}" "$@") args=() config
  for config in "${configs[@]}"; do
    args+=(--config "${config}")
  done
  "${topics}" --bootstrap-server "${bootstrap}" --create --if-not-exists \
    --topic "${topic}" --partitions "${partitions}" \
    --replication-factor "${KAFKA_REPLICATION_FACTOR}" "${args[@]}"
  # An existing topic gets the current settings too (a changed retention takes effect).
  local joined
  joined="$(IFS=,; echo "${configs[*]}")"
  /opt/kafka/bin/kafka-configs.sh --bootstrap-server "${bootstrap}" --alter \
    --entity-type topics --entity-name "${topic}" --add-config "${joined}"
  local actual
  actual="$("${topics}" --bootstrap-server "${bootstrap}" --describe --topic "${topic}" | grep -c 'Partition: ')"
  if [[ "${actual}" != "${partitions}" ]]; then
    echo "topic ${topic} has ${actual} partitions, expected ${partitions}; not altering it" >&2
    return 1
  fi
  echo "topic ${topic}: ${actual} partitions, replication factor ${KAFKA_REPLICATION_FACTOR}"
}

create "${KAFKA_TOPIC}" "${KAFKA_TOPIC_PARTITIONS}"
# Dead letters wait for someone to fix and replay them (manage.py replay_dlq): keep them
# far longer than Kafka's default 7 days (KAFKA_DLQ_RETENTION_MS, k8s/base/config/kafka.env).
create "${KAFKA_DLQ_TOPIC}" "${KAFKA_DLQ_TOPIC_PARTITIONS}" "retention.ms=${KAFKA_DLQ_RETENTION_MS}"
