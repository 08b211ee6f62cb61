"""X-Request-ID follows a purchase: storefront response, Kafka event header, consumer log,
and the storefront's call to the ledger."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devstack.stack import Ports, wait_until
from tests.support import kafka
from tests.support.http import request

CONSUMER_LOG_WAIT_S = 15.0


def new_request_id() -> str:
    return f"obs-{uuid.uuid4().hex}"


def buy(stack, userid: str, rid: str) -> dict:
    response = request(
        "POST",
        f"{stack.storefront_url}/buy",
        json={"username": "obs", "userid": userid, "price": "2.50"},
        headers={"X-Request-ID": rid},
        token=stack.issuer.token(userid),
    )
    assert response.status_code == 201, response.content
    headers = response.headers
    assert headers.get("X-Request-ID") == rid, f"the storefront did not echo X-Request-ID: {headers}"
    return response.json()["data"]


def topic_of(stack) -> str:
    return stack.env().get("KAFKA_TOPIC", "purchases")


@pytest.mark.timeout(60)
def test_buy_echoes_request_id_and_the_event_carries_it(stack, userid):
    topic = topic_of(stack)
    start = kafka.end_offsets(stack.bootstrap, topic)
    assert start, f"topic {topic} has no partitions"

    rid = new_request_id()
    purchase = buy(stack, userid, rid)

    found = kafka.find_event(stack.bootstrap, topic, purchase["purchase_id"], start=start, timeout=15)
    headers = dict(found.headers() or [])
    assert headers.get("x-request-id") == rid.encode(), f"event headers: {found.headers()}"
    assert found.key() == userid.encode()


def log_records(text: str) -> list[dict]:
    records = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


@pytest.mark.timeout(60)
def test_consumer_logs_the_stored_purchase_with_its_request_id(stack, userid):
    """Expects the consumer to log each stored purchase at INFO, as JSON with `request_id`
    (from the event's x-request-id header) and the purchase_id in the message."""
    rid = new_request_id()
    purchase = buy(stack, userid, rid)
    pid = purchase["purchase_id"]
    log = stack.procs["consumer"]

    def logged():
        return [
            r
            for r in log_records(log.output())
            if r.get("request_id") == rid and pid in str(r.get("message", ""))
        ]

    try:
        records = wait_until(logged, CONSUMER_LOG_WAIT_S, "consumer log line", interval=0.2)
    except TimeoutError:
        text = log.output()
        mentions = [line for line in text.splitlines() if pid in line or rid in line]
        pytest.fail(
            f"no JSON line in the consumer log {log.log} with request_id={rid!r} and a message "
            f"mentioning purchase {pid} within {CONSUMER_LOG_WAIT_S:.0f}s. Lines mentioning either: "
            f"{mentions[:5] or 'none'}",
            pytrace=False,
        )
    assert records[0].get("level") == "INFO", records[0]


@pytest.mark.timeout(30)
def test_get_all_user_buys_echoes_request_id(stack, userid):
    rid = new_request_id()
    response = request(
        "GET",
        f"{stack.storefront_url}/getAllUserBuys/{userid}",
        headers={"X-Request-ID": rid},
        token=stack.issuer.token(userid),
    )
    assert response.status_code == 200, response.content
    assert response.headers.get("X-Request-ID") == rid, response.headers
    assert response.json()["userid"] == userid


class FakeLedger:
    """An HTTP server on 127.0.0.1 that answers GET /purchases/<userid> and records headers."""

    def __init__(self):
        self.requests: list[tuple[str, dict]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                owner.requests.append((self.path, dict(self.headers)))
                userid = self.path.split("?")[0].rsplit("/", 1)[-1]
                body = json.dumps(
                    {"userid": userid, "purchases": [], "count": 0, "total_spent": 0, "next": None}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.mark.timeout(60)
def test_storefront_passes_the_request_id_to_the_ledger(stack, make_stack, userid):
    """A storefront of its own (on the shared broker) whose ledger is a recording fake:
    the id the client sent, or the one the storefront made, reaches the ledger."""
    with FakeLedger() as ledger:
        s = make_stack("fake-ledger", ports=Ports(broker=stack.ports.broker, mongo=stack.ports.mongo))
        s.start_web("storefront", WEB_CONCURRENCY="1", LEDGER_API_URL=ledger.url)

        rid = new_request_id()
        url, token = f"{s.storefront_url}/getAllUserBuys/{userid}", s.issuer.token(userid)
        response = request("GET", url, headers={"X-Request-ID": rid}, token=token)
        assert response.status_code == 200, response.content
        assert response.headers.get("X-Request-ID") == rid
        assert len(ledger.requests) == 1, ledger.requests
        path, received = ledger.requests[0]
        assert path.startswith(f"/purchases/{userid}"), path
        assert received.get("X-Request-ID") == rid, received

        # Without one from the client, the storefront's own id goes to the ledger.
        response = request("GET", url, token=token)
        assert response.status_code == 200, response.content
        made = response.headers.get("X-Request-ID")
        assert made and made != rid
        assert ledger.requests[1][1].get("X-Request-ID") == made, ledger.requests[1]
