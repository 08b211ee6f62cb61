"""A request header that does not arrive whole in time is disconnected by the server.

`WEB_HEADER_READ_TIMEOUT_S` bounds how long a connection may take to send its request header;
short here (2 s) so the test is quick. Traffic to 127.0.0.1 only; sockets closed, the process
stopped by PID.
"""

from __future__ import annotations

import time

import pytest

from devstack.slow_clients import close_all, open_slow_clients, still_open
from devstack.stack import wait_until
from tests.support.http import request

HEADER_TIMEOUT_S = 2


@pytest.mark.timeout(120)
def test_a_slow_request_header_is_disconnected_after_the_header_timeout(make_stack):
    s = make_stack("slow-headers", extra_env={"WEB_HEADER_READ_TIMEOUT_S": str(HEADER_TIMEOUT_S)})
    s.start_broker()
    s.start_web("storefront")

    clients = open_slow_clients(s.ports.storefront, 5)
    opened = time.monotonic()
    try:
        assert all(still_open(c) for c in clients), "the server closed a connection at once"
        # Generous for a busy machine, but far below the default's 10 s + the probe's patience.
        wait_until(
            lambda: not any(still_open(c) for c in clients), 5 * HEADER_TIMEOUT_S, "slow headers dropped"
        )
        took = time.monotonic() - opened
    finally:
        close_all(clients)

    assert took >= HEADER_TIMEOUT_S - 0.5, f"closed after {took:.1f}s, before the header timeout"
    assert request("GET", f"{s.storefront_url}/health", timeout=5).status_code == 200
