"""What the consumer loop tells the outside: its metrics and its liveness file."""

import json
import logging
import time
from pathlib import Path

from confluent_kafka import KafkaError
from prometheus_client import Counter, Gauge, Histogram

logger = logging.getLogger("purchases_project.kafka_engine.loop")

PROCESSED = Counter(
    "kafka_messages_processed_total", "Events handled by the consumer, by outcome", ["status"]
)
for _status in ("stored", "duplicate", "dead_lettered", "failed"):
    PROCESSED.labels(_status)
PROCESSING_SECONDS = Histogram(
    "kafka_message_processing_seconds",
    "Time from an event's batch arriving to the event being durably handled",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
BATCH_SIZE = Histogram(
    "kafka_consumer_batch_size",
    "Events per batch taken from the broker",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
)
LAG = Gauge(
    "kafka_consumer_lag",
    "High watermark minus committed offset, per assigned partition",
    ["topic", "partition"],
)
HELD = Gauge("kafka_consumer_held_messages", "Messages of a batch held while its write is retried")
RETRIES = Counter("kafka_consumer_batch_retries_total", "Failed attempts to write a batch (each retried)")
POLL_GAP = Gauge(
    "kafka_consumer_max_poll_gap_seconds",
    "Longest time this process went without polling the broker (max.poll.interval.ms bounds it)",
)
LIVENESS_BUDGET_S = 4.0  # an attempt's ceiling: the loop must poll (and touch its file) every 5 s


class Liveness:
    """Touches a file, at most once a second; no file when `path` is empty."""

    def __init__(self, path: str):
        self.path = Path(path) if path else None
        self._touched = 0.0

    def touch(self) -> None:
        now = time.monotonic()
        if self.path is None or now - self._touched < 1.0:
            return
        self.path.touch()
        self._touched = now


def report_lag(stats_json: str, assigned: set[tuple[str, int]]) -> None:
    """Lag from the client's statistics, which are fed by Fetch responses (exact on the local
    broker, unlike ListOffsets), for the assigned partitions only."""
    stats = json.loads(stats_json)
    for topic, topic_stats in stats.get("topics", {}).items():
        for partition_key, p in topic_stats.get("partitions", {}).items():
            partition = int(partition_key)
            if (topic, partition) not in assigned:
                continue
            high, committed = p.get("hi_offset", -1), p.get("committed_offset", -1)
            if high < 0:
                continue
            if committed < 0:
                committed = max(p.get("lo_offset", 0), 0)
            LAG.labels(topic, str(partition)).set(max(high - committed, 0))


def log_kafka_error(error: KafkaError) -> None:
    if error.code() == KafkaError._PARTITION_EOF:
        return
    logger.log(logging.ERROR if error.fatal() else logging.WARNING, "kafka: %s", error)
