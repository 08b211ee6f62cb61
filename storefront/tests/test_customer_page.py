"""The customer page in process: the chart's geometry (pure logic), and the page's answers
for a session signed in with a token of the test issuer (sign-in itself: test_signin.py)."""

from decimal import Decimal

import pytest

from devstack.stack import free_port
from purchases_project.identity.session import SESSION_TOKEN
from storefront import chart, ledger_client

pytestmark = pytest.mark.urls("storefront.urls")


def test_month_bars_fill_the_gaps_and_keep_the_last_twelve_months():
    months = [
        {"month": "2025-01", "count": 1, "total": Decimal("5.00")},
        {"month": "2025-11", "count": 2, "total": Decimal("10.00")},
        {"month": "2026-02", "count": 1, "total": Decimal("20.00")},
    ]
    bars = chart.month_bars(months)
    assert [b.month for b in bars] == [
        "2025-03", "2025-04", "2025-05", "2025-06", "2025-07", "2025-08",
        "2025-09", "2025-10", "2025-11", "2025-12", "2026-01", "2026-02",
    ]  # fmt: skip
    assert bars[-1].total == Decimal("20.00") and bars[-1].y == chart.TOP  # the tallest
    assert bars[8].total == Decimal("10.00") and bars[8].count == 2
    assert bars[8].height == pytest.approx(bars[-1].height / 2)
    assert all(b.height == 0 for b in bars if b.count == 0)
    assert all(b.x >= 0 and b.x + b.width <= chart.WIDTH for b in bars)
    assert all(b.y + b.height == pytest.approx(chart.HEIGHT - chart.BOTTOM) for b in bars)


def test_month_bars_of_nothing_and_of_one_month():
    assert chart.month_bars([]) == []
    (bar,) = chart.month_bars([{"month": "2026-12", "count": 1, "total": Decimal("0")}])
    assert bar.height == 0 and bar.width == chart.MAX_BAR_WIDTH


@pytest.fixture
def signed_in(client, token_issuer):
    """`signed_in(userid, scope="")`: the test client's session holds a token for userid."""

    def sign_in(userid: str, scope: str = ""):
        session = client.session
        session[SESSION_TOKEN] = token_issuer.token(userid, scope=scope)
        session.save()
        client.cookies["web_session"] = session.session_key
        return client

    return sign_in


def test_signed_out_the_page_says_what_the_service_is(client, settings):
    settings.OIDC_CLIENT_ID, settings.OIDC_CLIENT_SECRET = "storefront", "secret"
    page = client.get("/")
    assert page.status_code == 200
    assert page["Cache-Control"] == "no-store"
    assert b"Your purchases, in one place" in page.content
    assert b'href="/login/?next=/"' in page.content


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({}, "Missing required fields: [&#x27;username&#x27;, &#x27;price&#x27;]"),
        ({"username": "john", "price": ""}, "Missing required fields: [&#x27;price&#x27;]"),
        ({"username": "john", "price": "abc"}, "Price must be a valid number"),
        ({"username": "john", "price": "-5"}, "Price cannot be negative"),
        ({"username": "john", "price": "29.999"}, "Price cannot have more than 2 decimal places"),
        ({"username": "a\u200bb", "price": "1"}, "username"),
    ],
)
def test_the_form_shows_the_rules_error_texts(signed_in, live_settings, userid, form, error):
    client = signed_in(userid)
    page = client.post("/", form)
    assert page.status_code == 200
    text = page.content.decode()
    assert 'role="alert"' in text and error in text.split('role="alert">')[1].split("</p>")[0]


def test_a_recorded_purchase_redirects_back_to_the_page(signed_in, live_settings, userid):
    client = signed_in(userid)
    answer = client.post("/", {"username": "john", "price": "12.30", "key": "form-1"})
    assert answer.status_code == 303 and answer["Location"].startswith("/?recorded=")
    again = client.post("/", {"username": "john", "price": "12.30", "key": "form-1"})
    assert again["Location"] == answer["Location"], "a double submit is the same purchase"
    page = client.get(answer["Location"])
    assert page.status_code == 200
    assert page["Cache-Control"] == "no-store"
    assert "Cookie" in page["Vary"] and "Authorization" in page["Vary"]
    purchase_id = answer["Location"].split("=")[1]
    assert f'data-purchase-id="{purchase_id}"'.encode() in page.content
    assert b'<dd id="count">1</dd>' in page.content and b'<dd id="total">12.30</dd>' in page.content


def test_another_customers_page_needs_read_all(signed_in, live_settings, userid):
    refused = signed_in(userid).get("/?userid=someone-else")
    assert refused.status_code == 403
    assert refused["Cache-Control"] == "no-store" and refused["Vary"] == "Authorization, Cookie"
    assert signed_in(userid).get("/?userid=..").status_code == 400
    page = signed_in("support-1", scope="purchases:read-all").get(f"/?userid={userid}")
    assert page.status_code == 200 and b'class="buy"' not in page.content


def test_the_page_says_when_the_ledger_is_away(signed_in, settings, userid):
    settings.LEDGER_API_URL = f"http://127.0.0.1:{free_port()}"
    ledger_client.close_session()
    page = signed_in(userid).get("/")
    assert page.status_code == 200
    assert b"The ledger is unavailable; reload the page to try again." in page.content
