"""GET /getAllUserBuys and /health on the storefront, in process."""

import socket
import time

import pytest

from devstack.stack import free_port
from storefront import ledger_client

pytestmark = pytest.mark.urls("storefront.urls")


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy"}


def test_unknown_user_has_no_purchases(client, live_settings, bearer):
    response = client.get("/getAllUserBuys/nonexistent-user-xyz", headers=bearer("nonexistent-user-xyz"))
    assert response.status_code == 200
    assert response.json() == {
        "userid": "nonexistent-user-xyz",
        "purchases": [],
        "count": 0,
        "total_spent": 0,
        "next": None,
    }


READS = ["/getAllUserBuys/someone", "/getSpending/someone"]


@pytest.mark.parametrize("path", READS)
def test_ledger_unreachable_is_503(client, settings, bearer, path):
    settings.LEDGER_API_URL = f"http://127.0.0.1:{free_port()}"
    ledger_client.close_session()
    response = client.get(path, headers=bearer("someone"))
    assert response.status_code == 503
    assert response.json() == {"error": "The ledger is unavailable"}


@pytest.mark.parametrize("path", READS)
def test_ledger_too_slow_is_504(client, settings, bearer, path):
    # A listening socket that never answers: connections succeed, reads time out.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        settings.LEDGER_API_URL = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings.LEDGER_READ_TIMEOUT_S = 0.5
        ledger_client.close_session()
        started = time.monotonic()
        response = client.get(path, headers=bearer("someone"))
    assert response.status_code == 504
    assert response.json() == {"error": "The ledger did not answer in time"}
    assert time.monotonic() - started < 3


def test_next_links_are_built_on_the_public_base_url(client, live_settings, settings, bearer, userid):
    from decimal import Decimal

    from ledger import services
    from purchases_project.events import PurchaseEvent

    services.purchases_record(
        events=[PurchaseEvent.new(username="j", userid=userid, price=Decimal(p)) for p in ("1", "2")]
    )
    settings.PUBLIC_BASE_URL = "https://shop.example.com"
    response = client.get(f"/getAllUserBuys/{userid}?limit=1", headers=bearer(userid), HTTP_HOST="127.0.0.1")
    assert response.status_code == 200
    assert response.json()["next"].startswith(f"https://shop.example.com/getAllUserBuys/{userid}?")


@pytest.mark.parametrize("accept", ["application/json", "text/html"])
def test_purchases_are_never_cached_and_vary_by_token_and_session(
    client, live_settings, bearer, userid, accept
):
    from ledger.tests.test_purchases_api import private, record

    record(userid, "4.00")
    response = client.get(f"/getAllUserBuys/{userid}", headers=bearer(userid), HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response["Content-Type"].startswith(accept)
    assert private(response), dict(response.headers)
    refused = client.get(f"/getAllUserBuys/{userid}", headers=bearer("someone-else"), HTTP_ACCEPT=accept)
    assert refused.status_code == 403 and private(refused)
