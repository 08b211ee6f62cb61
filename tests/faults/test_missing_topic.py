"""A storefront whose topic does not exist answers 503 and creates nothing.

Our clients never auto-create a topic (`allow.auto.create.topics` is off): a topic made by a
metadata request would get the broker's default partition count, not the one the consumers'
autoscaling is sized for. Own stack; traffic to 127.0.0.1 only; every process stopped by PID.
"""

from __future__ import annotations

import time

from confluent_kafka.admin import AdminClient

from tests.support import http

MISSING = "purchases-never-created"


def test_a_missing_topic_answers_503_and_is_not_created(make_stack):
    stack = make_stack("missing-topic", extra_env={"KAFKA_TOPIC": MISSING, "KAFKA_PUBLISH_TIMEOUT_S": "0.5"})
    stack.start_broker()
    stack.start_web("storefront")
    body = {"username": "a", "userid": "b", "price": 1}

    for _ in range(2):
        started = time.monotonic()
        response = http.post(
            f"{stack.storefront_url}/buy", json=body, token=stack.issuer.token("b"), timeout=10
        )
        took = time.monotonic() - started
        assert response.status_code == 503, response.text
        assert "broker" in response.json()["error"]
        assert took < 2.0, took

    # Listing every topic asks for none by name, so it cannot create one itself.
    topics = AdminClient({"bootstrap.servers": stack.bootstrap}).list_topics(timeout=10).topics
    assert MISSING not in topics, sorted(topics)
    assert stack.procs["storefront"].alive()
