"""What the consumer loop tells the outside: its metrics and its liveness file."""

import time
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram

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
