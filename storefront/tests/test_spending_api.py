"""GET /getSpending on the storefront (and order on /getAllUserBuys), in process, through the real ledger."""

import pytest

from devstack.stack import free_port
from ledger.tests.helpers import stored_purchases
from purchases_project import identity
from storefront import ledger_client

pytestmark = pytest.mark.urls("storefront.urls")


NOVEMBER = (
    ("2026-11-01T00:00:00.000000Z", "29.99"),
    ("2026-11-15T12:00:00.000000Z", "15.50"),
    ("2026-11-30T23:59:59.999999Z", "42.00"),
)


def test_spending_comes_from_the_ledger_exact_and_never_cached(client, live_settings, bearer, userid):
    stored_purchases(userid, ("2026-10-31T23:59:59.999999Z", "1.00"), *NOVEMBER)
    response = client.get(f"/getSpending/{userid}", headers=bearer(userid))
    assert response.status_code == 200
    assert response.json() == {
        "userid": userid,
        "months": [
            {"month": "2026-10", "count": 1, "total": 1},
            {"month": "2026-11", "count": 3, "total": 87.49},
        ],
        "count": 4,
        "total_spent": 88.49,
    }
    assert b'"total":87.49' in response.content and b'"total_spent":88.49' in response.content
    assert response["Cache-Control"] == "no-store"
    assert {"Authorization", "Cookie"} <= {v.strip() for v in response["Vary"].split(",")}
    window = client.get(f"/getSpending/{userid}?since=2026-11&until=2026-12", headers=bearer(userid)).json()
    assert [m["month"] for m in window["months"]] == ["2026-11"] and window["count"] == 4


def test_spending_follows_the_read_rules(client, live_settings, bearer, userid):
    assert client.get(f"/getSpending/{userid}").status_code == 401
    other = client.get(f"/getSpending/{userid}-other", headers=bearer(userid))
    assert other.status_code == 403 and "error" in other.json()
    support = bearer("support", scope=identity.READ_ALL_SCOPE)
    assert client.get(f"/getSpending/{userid}-other", headers=support).status_code == 200


def test_a_malformed_month_is_400_before_the_ledger_is_asked(client, settings, bearer):
    settings.LEDGER_API_URL = f"http://127.0.0.1:{free_port()}"  # nobody there
    ledger_client._session = None
    response = client.get("/getSpending/someone?until=2026-13", headers=bearer("someone"))
    assert response.status_code == 400
    assert response.json()["error"] == "until: must be a month as YYYY-MM, e.g. 2026-11"


def test_purchases_newest_first_page_through_the_storefront(client, live_settings, bearer, userid):
    events = stored_purchases(userid, *NOVEMBER)
    url, seen = f"/getAllUserBuys/{userid}?limit=2&order=desc", []
    while url:
        response = client.get(url, headers=bearer(userid))
        assert response.status_code == 200
        body = response.json()
        seen += [p["purchase_id"] for p in body["purchases"]]
        url = body["next"]
        if url:
            assert url.startswith(f"http://testserver/getAllUserBuys/{userid}?") and "order=desc" in url
    assert seen == [e.purchase_id for e in reversed(events)]
