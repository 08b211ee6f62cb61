"""Slow clients must not take the public port down.

200 connections to the storefront send a partial request header and then wait (a slow or
hostile client, "slowloris"). While they hang, health probes and purchases on fresh
connections must still be answered, each within a bound a Kubernetes probe would accept.
Traffic goes to 127.0.0.1 only; every socket is closed and every process stopped by PID.
"""

from __future__ import annotations

import json
import time

import pytest

from devstack.slow_clients import close_all, open_slow_clients, still_open
from devstack.stack import wait_until
from tests.support.http import request

SLOW_CLIENTS = 200
PROBES = 10
# A liveness probe's timeout is 1 s by default; leave room for a busy 2-core machine.
PROBE_BOUND_S = 2.0


def timed(method: str, url: str, **kwargs) -> tuple[int | None, float]:
    started = time.monotonic()
    try:
        status = request(method, url, timeout=PROBE_BOUND_S, **kwargs).status_code
    except OSError:  # requests' timeouts and connection errors included
        status = None
    return status, time.monotonic() - started


@pytest.mark.timeout(120)
def test_health_and_purchases_answer_while_200_slow_clients_hang(make_stack):
    s = make_stack("slow-clients")
    s.start_broker()
    s.create_topics()
    s.start_web("storefront")
    base = s.storefront_url
    body = {"username": "slow", "userid": "slow-1", "price": 1}
    token = s.issuer.token("slow-1")
    assert timed("POST", f"{base}/buy", json=body, token=token)[0] == 201

    clients = open_slow_clients(s.ports.storefront, SLOW_CLIENTS)
    try:
        probes = [timed("GET", f"{base}/health") for _ in range(PROBES)]
        buys = [timed("POST", f"{base}/buy", json=body, token=token) for _ in range(3)]
        open_now = sum(1 for c in clients if still_open(c))
    finally:
        close_all(clients)

    print(json.dumps({"probes": probes, "buys": buys, "slow_still_open": open_now}))
    answered = [t for status, t in probes if status == 200]
    assert len(answered) == PROBES, f"{PROBES - len(answered)} of {PROBES} health probes failed: {probes}"
    assert max(answered) < PROBE_BOUND_S, probes
    assert [status for status, _ in buys] == [201, 201, 201], buys
    # The slow clients were really holding connections while the probes ran.
    assert open_now == SLOW_CLIENTS, f"only {open_now} slow connections were still open"

    # Once they are gone the server is as before.
    wait_until(lambda: timed("GET", f"{base}/health")[0] == 200, 10, "health after the slow clients left")
    assert s.procs["storefront"].alive()
