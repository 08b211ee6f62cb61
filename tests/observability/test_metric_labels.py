"""No metric label takes a value a client chooses: random methods and paths sent to the running
storefront and ledger leave `/metrics` with `method="other"` and route names, and its size bounded.

Before, django-prometheus labelled latency by the method as sent: 300 requests with random
1,000-character methods grew the storefront's `/metrics` from 81 KB to 8 MB.
"""

from __future__ import annotations

import random
import string

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.observability.helpers import REQUESTS_BY_METHOD, Connection, sample_value, scrape

STANDARD_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"}
REQUESTS = 50
KNOWN_PATHS = ["/buy", "/health", "/getAllUserBuys/u-labels", "/purchases/u-labels"]


def label_values(text: str) -> dict[str, set[str]]:
    """Every value each label name takes in an exposition text."""
    values: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for name, value in sample.labels.items():
                values.setdefault(name, set()).add(value)
    return values


def hostile_requests(port: int, rng: random.Random, count: int) -> list[str]:
    """`count` requests with random 1,000-letter methods, half to random paths, half to real
    routes; returns the random words sent (methods and path segments)."""
    sent: list[str] = []
    connection = Connection(port, timeout=15)
    try:
        for i in range(count):
            method = "".join(rng.choices(string.ascii_uppercase, k=1000))
            segment = "".join(rng.choices(string.ascii_lowercase + string.digits, k=40))
            path = f"/{segment}/{i}" if i % 2 else f"{rng.choice(KNOWN_PATHS)}?{segment}=1"
            sent += [method, segment]
            status, _ = connection.request(method, path, headers={"Host": "127.0.0.1"})
            assert 400 <= status < 500, (status, path)
    finally:
        connection.close()
    return sent


@pytest.mark.timeout(120)
@pytest.mark.parametrize("role", ["storefront", "ledger"])
def test_random_methods_and_paths_are_no_labels(stack, role):
    port = getattr(stack.ports, role)
    metrics_port = getattr(stack.ports, f"{role}_metrics")
    rng = random.Random()
    before = scrape(metrics_port)

    sent = hostile_requests(port, rng, REQUESTS)
    after = scrape(metrics_port)

    leaked = [word[:20] for word in sent if word in after]
    assert not leaked, f"client-chosen text became labels: {leaked[:5]}"
    methods = label_values(after).get("method", set())
    assert methods <= STANDARD_METHODS | {"other"}, sorted(m[:20] for m in methods - STANDARD_METHODS)
    counted = sample_value(after, REQUESTS_BY_METHOD, method="other") - sample_value(
        before, REQUESTS_BY_METHOD, method="other"
    )
    assert counted == REQUESTS, f"{counted} of {REQUESTS} unknown methods counted as other"
    views = label_values(after).get("view", set())
    assert all(not view.startswith("/") for view in views), views
    # The first round may add the `other` series (a few KB); more rounds add none.
    assert len(after) - len(before) < 20_000, f"/metrics grew {len(before)} -> {len(after)} bytes"
    hostile_requests(port, rng, REQUESTS)
    again = scrape(metrics_port)
    assert len(again) - len(after) < 2_000, f"/metrics grew {len(after)} -> {len(again)} bytes"
