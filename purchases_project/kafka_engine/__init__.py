"""A Kafka consumer loop that knows nothing about what it consumes (decision 0008).

`loop.Engine` polls, batches, holds and commits; `contract` is what a batch handler
implements and the engine's settings; `observe` holds its metrics and liveness file.
"""

from purchases_project.kafka_engine.contract import BatchHandler, EngineSettings, Handled, ShutdownTimeout
from purchases_project.kafka_engine.loop import Engine
from purchases_project.kafka_engine.observe import LAG, Liveness

__all__ = ["LAG", "BatchHandler", "Engine", "EngineSettings", "Handled", "Liveness", "ShutdownTimeout"]
