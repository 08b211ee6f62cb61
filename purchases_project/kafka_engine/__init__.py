"""A Kafka consumer loop that knows nothing about what it consumes (decision 0008).

`loop.Engine` polls, batches, holds, and commits; `contract` is what a handler
implements (decode one message, write events, one outcome per event) and the
engine's settings; `policy` decides what becomes of refused events and which
offsets are committed; `batch` writes a batch in chunks and counts it;
`dead_letters` is the dead-letter header scheme and sender; `partitions` keeps the
engine's own position in each partition and checks every message against it;
`observe` holds the metrics and the liveness file.
"""

from purchases_project.kafka_engine.contract import (
    DUPLICATE,
    STORED,
    EngineSettings,
    Handler,
    InvalidMessage,
    Outcome,
    Retryable,
    ShutdownTimeout,
    Status,
    TooManyInvalidEvents,
    conflict,
    dead_letter_producer_config,
    invalid,
)
from purchases_project.kafka_engine.dead_letters import DeadLetterSender
from purchases_project.kafka_engine.loop import Engine
from purchases_project.kafka_engine.observe import LAG, PROCESSED, Liveness
from purchases_project.kafka_engine.policy import DeadLetterPolicy, LeaveRefused, MarkStore

__all__ = [
    "DUPLICATE",
    "LAG",
    "PROCESSED",
    "STORED",
    "DeadLetterPolicy",
    "DeadLetterSender",
    "Engine",
    "EngineSettings",
    "Handler",
    "InvalidMessage",
    "LeaveRefused",
    "Liveness",
    "MarkStore",
    "Outcome",
    "Retryable",
    "ShutdownTimeout",
    "Status",
    "TooManyInvalidEvents",
    "conflict",
    "dead_letter_producer_config",
    "invalid",
]
