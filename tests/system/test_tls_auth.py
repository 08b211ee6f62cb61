"""The client side of an encrypted, authenticated data tier, as far as the local stand-ins allow.

A stack of its own (devstack/tls.py): a throwaway CA and a server certificate for 127.0.0.1;
the database with `--auth` and `--tls-*`, the ledger and the consumer each logging in as
their own user (the ledger's may only read); the broker behind a TLS terminator (stunnel4)
that it advertises, every Kafka client on `security.protocol=SSL` with the CA. A purchase
flows through all of it, the dead-letter producer, `replay_dlq` and `create_topics` talk
TLS too, and clients without TLS, without the CA or without the right user are refused.

SCRAM cannot be proven against the local broker (the Tansu 0.6.0 build we have stores no
SCRAM credentials: README, Tests), so the last test shows the SASL settings reach the
configuration of every Kafka client the project builds.
"""

from __future__ import annotations

import io
import logging
import secrets
from decimal import Decimal

import pymongo
import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from devstack.stack import Stack, wait_until
from devstack.tls import Certificates, Security
from purchases_project import kafka_config
from purchases_project.events import PurchaseEvent
from tests.support import kafka
from tests.support.http import request
from tests.support.processes import run_python

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory, token_issuer):
    workdir = tmp_path_factory.mktemp("tls-stack")
    s = Stack(
        workdir,
        mongo_user="admin",
        mongo_password=secrets.token_urlsafe(16),
        issuer=token_issuer,
        security=Security(workdir / "security"),
    )
    try:
        s.start_all()
        yield s
    finally:
        s.stop()


@pytest.fixture
def tls_settings(settings, tls_stack):
    """This process's Kafka clients (tests/support/kafka.py) configured as the stack's are."""
    assert tls_stack.security is not None
    for name, value in tls_stack.security.kafka_env().items():
        setattr(settings, name, value)
    return settings


def buy(stack, bearer, userid, price):
    body = {"username": "tls", "userid": userid, "price": price}
    return request("POST", f"{stack.storefront_url}/buy", json=body, headers=bearer(userid))


def wait_for_purchases(stack, bearer, userid, count):
    def ready():
        response = request("GET", f"{stack.storefront_url}/getAllUserBuys/{userid}", headers=bearer(userid))
        body = response.json(parse_float=Decimal) if response.status_code == 200 else None
        return body if body and body["count"] == count else None

    return wait_until(ready, 45, f"{count} purchases of {userid}", interval=0.2)


def test_each_process_uses_tls_and_its_own_database_user(tls_stack):
    uris = {role: tls_stack.env(SERVICE_ROLE=role)["MONGODB_URI"] for role in ("ledger", "storefront")}
    consumer = tls_stack.env()
    assert uris["ledger"].startswith("mongodb://ledger:") and "tls=true" in uris["ledger"]
    assert consumer["MONGODB_URI"].startswith("mongodb://consumer:") and "tls=true" in consumer["MONGODB_URI"]
    assert "@" not in uris["storefront"]  # the storefront never reads the database
    assert consumer["KAFKA_SECURITY_PROTOCOL"] == "SSL"
    assert consumer["KAFKA_SSL_CA_LOCATION"] == str(tls_stack.security.certs.ca)


def test_a_purchase_flows_end_to_end_over_tls(tls_stack, tls_settings, bearer, userid):
    start = kafka.end_offsets(tls_stack.bootstrap, "purchases")
    response = buy(tls_stack, bearer, userid, "12.34")
    assert response.status_code == 201, response.text
    purchase_id = response.json()["data"]["purchase_id"]
    # This process's reader reaches the event over TLS, as the consumer does.
    assert kafka.find_event(tls_stack.bootstrap, "purchases", purchase_id, start=start)
    body = wait_for_purchases(tls_stack, bearer, userid, 1)
    assert body["total_spent"] == Decimal("12.34")
    assert body["purchases"][0]["purchase_id"] == purchase_id


def test_dead_letters_replay_and_topic_creation_speak_tls(tls_stack, tls_settings, bearer, userid):
    producer = Producer(kafka_config.producer(bootstrap_servers=tls_stack.bootstrap))
    dlq_start = kafka.end_offsets(tls_stack.bootstrap, "purchases.dlq")
    producer.produce("purchases", key=userid.encode(), value=b"{broken json")
    assert producer.flush(15) == 0
    # The consumer's dead-letter producer wrote it over TLS.
    key = userid.encode()
    letters = kafka.read(
        tls_stack.bootstrap,
        "purchases.dlq",
        until=lambda found: any(m.key() == key for m in found),
        start=dlq_start,
    )
    assert [m.value() for m in letters if m.key() == key] == [b"{broken json"]

    fixed = PurchaseEvent.new(username="tls", userid=userid, price=Decimal("5.00"))
    producer.produce("purchases.dlq", key=userid.encode(), value=fixed.as_message())
    assert producer.flush(15) == 0
    replay = run_python("manage.py", "replay_dlq", "--idle-timeout", "3", env=tls_stack.env(), timeout=120)
    assert replay.returncode == 0, replay.stderr
    assert "replayed 1 events" in replay.stdout, replay.stdout
    assert (
        wait_for_purchases(tls_stack, bearer, userid, 1)["purchases"][0]["purchase_id"] == fixed.purchase_id
    )

    created = run_python("manage.py", "create_topics", env=tls_stack.env(), timeout=60)
    assert created.returncode == 0, created.stderr
    assert "purchases: exists" in created.stdout, created.stdout


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def kafka_refusal(stack, **client) -> str:
    """What an admin client with `client` settings logs when it asks the broker for metadata."""
    lines = Lines()
    logger = logging.getLogger(f"tls-check-{secrets.token_hex(4)}")
    logger.addHandler(lines)
    logger.propagate = False
    admin = AdminClient({"bootstrap.servers": stack.bootstrap, "logger": logger, **client})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=3)
    admin.poll(1)  # serves the log callbacks
    return "\n".join(lines.lines)


def test_the_broker_port_refuses_plaintext_clients(tls_stack):
    said = kafka_refusal(tls_stack, **{"security.protocol": "PLAINTEXT"})
    # The terminator resets the connection at the client's first (unencrypted) request.
    assert "connection reset by peer (after" in said and "APIVERSION_QUERY" in said, said


def test_a_kafka_client_without_the_ca_fails_verification(tls_stack, tmp_path):
    other_ca = Certificates(tmp_path / "other").ensure().ca
    said = kafka_refusal(tls_stack, **{"security.protocol": "SSL", "ssl.ca.location": str(other_ca)})
    assert "certificate verify failed" in said, said
    said = kafka_refusal(tls_stack, **{"security.protocol": "SSL"})  # the system's trust store only
    assert "certificate verify failed" in said, said


def mongo(uri: str) -> pymongo.MongoClient:
    return pymongo.MongoClient(uri, serverSelectionTimeoutMS=2000)


def test_the_ledgers_user_may_only_read_and_the_consumers_may_write(tls_stack):
    security, port, db = tls_stack.security, tls_stack.ports.mongo, tls_stack.database
    with mongo(security.mongo_uri(port, "ledger")) as ledger:
        ledger[db]["purchases"].find_one()
        with pytest.raises(pymongo.errors.OperationFailure) as refused:
            ledger[db]["purchases"].insert_one({"userid": "forged"})
        assert refused.value.code == 13  # Unauthorized
    with mongo(security.mongo_uri(port, "consumer")) as consumer:
        consumer[db]["tls_check"].insert_one({"ok": 1})
        assert consumer[db]["tls_check"].delete_many({}).deleted_count == 1
        with pytest.raises(pymongo.errors.OperationFailure):
            consumer["admin"]["system.users"].find_one()


def test_the_database_refuses_plaintext_a_wrong_ca_and_a_wrong_password(tls_stack, tmp_path):
    port, security = tls_stack.ports.mongo, tls_stack.security
    plain = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    with mongo(plain) as client, pytest.raises(pymongo.errors.ServerSelectionTimeoutError):
        client.admin.command("ping")
    other_ca = Certificates(tmp_path / "other").ensure().ca
    with mongo(f"{plain}&tls=true&tlsCAFile={other_ca}") as client:
        with pytest.raises(pymongo.errors.ServerSelectionTimeoutError, match="CERTIFICATE_VERIFY_FAILED"):
            client.admin.command("ping")
    wrong = security.mongo_uri(port, "ledger").replace(security.passwords["ledger"], "wrong-password")
    with mongo(wrong) as client, pytest.raises(pymongo.errors.OperationFailure):
        client[tls_stack.database]["purchases"].find_one()


SASL = {
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "purchases-consumer",
    "KAFKA_SASL_PASSWORD": "from-the-kafkauser-secret",
    "KAFKA_SSL_CA_LOCATION": "/etc/kafka-ca/ca.crt",
}
LIBRDKAFKA = {
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "purchases-consumer",
    "sasl.password": "from-the-kafkauser-secret",
    "ssl.ca.location": "/etc/kafka-ca/ca.crt",
}


class Recorded:
    """Stands in for a Kafka client's constructor: keeps the configuration, connects nowhere."""

    made: list[dict]

    def __init__(self, config: dict):
        self.made.append(config)

    def flush(self, *args) -> int:
        return 0

    def list_topics(self, *args, **kwargs):
        return type("Metadata", (), {"topics": {}})()

    def create_topics(self, *args, **kwargs) -> dict:
        return {}


def test_the_sasl_settings_reach_every_kafka_client(settings, monkeypatch):
    from django.core.management import call_command

    from ledger import consumer, dlq
    from purchases_project import topics
    from storefront import producer

    for name, value in SASL.items():
        setattr(settings, name, value)
    made: list[dict] = []
    monkeypatch.setattr(Recorded, "made", made, raising=False)
    monkeypatch.setattr(kafka, "Consumer", Recorded)
    monkeypatch.setattr(topics, "AdminClient", Recorded)

    clients = {"storefront producer": producer.producer_config()}
    engine = consumer.purchase_consumer()
    clients["consumer"] = engine.config.kafka
    engine.policy.sender._factory = Recorded
    engine.policy.sender.open()  # the dead-letter producer
    replayer = dlq.dead_letter_replayer(dlq_topic="purchases.dlq", topic="purchases", max_messages=1)
    clients["replay consumer"] = replayer.config.kafka
    replayer.handler._factory = Recorded
    replayer.handler.open()  # the replay's producer
    call_command("create_topics", stdout=io.StringIO())  # its admin client
    kafka._reader("127.0.0.1:9092")  # this suite's own readers
    names = ["dead-letter producer", "replay producer", "create_topics admin", "test reader"]
    clients.update(zip(names, made, strict=True))
    for name, config in clients.items():
        assert {key: config.get(key) for key in LIBRDKAFKA} == LIBRDKAFKA, name
