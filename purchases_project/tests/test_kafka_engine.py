"""Pure logic of the consumer loop and the purchase handling's run counting (no servers)."""

from decimal import Decimal

import pytest

from ledger.consumer import PurchaseBatches
from purchases_project import kafka_config
from purchases_project.events import PurchaseEvent
from purchases_project.kafka_engine import EngineSettings


@pytest.mark.parametrize(("interval_ms", "budget_s"), [(6000, 3.0), (300000, 4.0), (2000, 1.0)])
def test_an_attempt_gets_half_the_poll_interval_and_at_most_four_seconds(interval_ms, budget_s):
    config = EngineSettings(topic="t", kafka={"max.poll.interval.ms": interval_ms}, batch_size=1)
    assert config.attempt_budget_s == budget_s


def test_every_client_configuration_carries_the_security_settings(settings):
    settings.KAFKA_SECURITY_PROTOCOL = "SASL_SSL"
    settings.KAFKA_SASL_MECHANISM = "SCRAM-SHA-512"
    settings.KAFKA_SASL_USERNAME = "purchases"
    settings.KAFKA_SASL_PASSWORD = "secret"
    settings.KAFKA_SSL_CA_LOCATION = "/etc/kafka/ca.pem"
    for config in (
        kafka_config.producer(),
        kafka_config.consumer(group="g"),
        kafka_config.admin(bootstrap_servers="b:9092"),
    ):
        assert config["security.protocol"] == "SASL_SSL"
        assert config["sasl.username"] == "purchases" and config["ssl.ca.location"] == "/etc/kafka/ca.pem"


class FakeMessage:
    def __init__(self, partition: int, offset: int, value: bytes):
        self._partition, self._offset, self._value = partition, offset, value

    def topic(self):
        return "purchases"

    def partition(self):
        return self._partition

    def offset(self):
        return self._offset

    def value(self):
        return self._value


def valid() -> bytes:
    return PurchaseEvent.new(username="u", userid="u", price=Decimal("1.00")).as_message()


def test_a_valid_event_on_another_partition_does_not_end_a_run():
    handler = PurchaseBatches(group="g", dlq_topic="d", dlq_max_consecutive=3, producer_config={})
    interleaved = []
    for offset in range(4):
        interleaved += [FakeMessage(0, offset, b"garbage"), FakeMessage(1, offset, valid())]
    batch = handler.prepare(interleaved)
    assert batch.capped == {("purchases", 0)}
    assert len(batch.dead_letters) == 3
    assert batch.commit == {("purchases", 0): 0, ("purchases", 1): 4}


def test_an_open_run_holds_its_partition_at_the_run_start_across_batches():
    handler = PurchaseBatches(group="g", dlq_topic="d", dlq_max_consecutive=100, producer_config={})
    first = handler.prepare([FakeMessage(0, 0, valid()), FakeMessage(0, 1, b"x"), FakeMessage(0, 2, b"x")])
    assert first.commit == {("purchases", 0): 1}
    second = handler.prepare([FakeMessage(0, 3, b"x")])
    assert second.commit == {("purchases", 0): 1}
    third = handler.prepare([FakeMessage(0, 4, valid())])
    assert third.commit == {("purchases", 0): 5}
    assert third.marks == {("purchases", 0): None}  # the run ended: its mark goes
