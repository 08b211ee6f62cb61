"""Creating the Kafka topics with their intended partition counts (confluent-kafka's AdminClient).

Topics are created explicitly, once: a client asking for metadata of a missing
topic may have the broker auto-create it with the broker's default count.
"""

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from purchases_project import kafka_config

logger = logging.getLogger(__name__)


def topics_ensure(
    *,
    topics: dict[str, int],
    bootstrap_servers: str | None = None,
    timeout: float = 10.0,
    client: dict | None = None,
) -> dict[str, str]:
    """Create each missing topic with its partition count; returns what happened to each.
    `client` overrides the settings' client configuration (a stack of one's own)."""
    admin = AdminClient(kafka_config.admin(bootstrap_servers=bootstrap_servers, **(client or {})))
    existing = admin.list_topics(timeout=timeout).topics  # all topics: creates none
    outcome: dict[str, str] = {}
    wanted = []
    for name, partitions in topics.items():
        if name in existing:
            have = len(existing[name].partitions)
            outcome[name] = f"exists with {have} partitions"
            if have != partitions:
                logger.warning("topic %s has %d partitions, not %d", name, have, partitions)
        else:
            wanted.append(NewTopic(name, num_partitions=partitions, replication_factor=-1))
    for name, future in admin.create_topics(wanted, request_timeout=timeout).items() if wanted else []:
        try:
            future.result(timeout)
            outcome[name] = f"created with {topics[name]} partitions"
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            outcome[name] = "exists"
    return outcome
