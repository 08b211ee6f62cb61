"""Every Kafka client's configuration, built in one place.

The storefront's producer, the consumer and its dead-letter producer,
`replay_dlq`, `create_topics` and the benchmark all start from `common()`, so a
security setting (SASL, TLS) added to the settings reaches every client. The
functions return plain dicts for confluent-kafka; they create no client.
`bootstrap_servers` overrides the setting for tools that talk to a stack of
their own (tests, the benchmark).
"""

import logging

from django.conf import settings

# librdkafka's own logs, in our log format.
KAFKA_LOGGER = logging.getLogger("kafka")


def common(*, bootstrap_servers: str | None = None) -> dict:
    config = {
        "bootstrap.servers": bootstrap_servers or settings.KAFKA_BOOTSTRAP_SERVERS,
        "logger": KAFKA_LOGGER,
        "security.protocol": settings.KAFKA_SECURITY_PROTOCOL,
    }
    optional = {
        "sasl.mechanism": settings.KAFKA_SASL_MECHANISM,
        "sasl.username": settings.KAFKA_SASL_USERNAME,
        "sasl.password": settings.KAFKA_SASL_PASSWORD,
        "ssl.ca.location": settings.KAFKA_SSL_CA_LOCATION,
    }
    config.update({key: value for key, value in optional.items() if value})
    return config


def producer(*, bootstrap_servers: str | None = None, **overrides) -> dict:
    """An idempotent producer that waits for every in-sync replica and never creates a topic."""
    return {
        **common(bootstrap_servers=bootstrap_servers),
        "acks": "all",
        "enable.idempotence": True,
        # The Java client's key hashing, so one user's events keep one partition whatever produces them.
        "partitioner": "murmur2_random",
        # A missing topic is an error, never one auto-created with the broker's default count.
        "allow.auto.create.topics": False,
        **overrides,
    }


def consumer(*, group: str, bootstrap_servers: str | None = None, **overrides) -> dict:
    """A group member that commits by hand, with the group timeouts from the settings."""
    return {
        **common(bootstrap_servers=bootstrap_servers),
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.KAFKA_SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": settings.KAFKA_HEARTBEAT_INTERVAL_MS,
        "max.poll.interval.ms": settings.KAFKA_MAX_POLL_INTERVAL_MS,
        **overrides,
    }


def admin(*, bootstrap_servers: str | None = None, **overrides) -> dict:
    return {**common(bootstrap_servers=bootstrap_servers), **overrides}
