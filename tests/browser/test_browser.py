"""The services in a real browser: headless Debian Chromium driven by Playwright
against the shared stack.

The ledger's and the storefront's DRF pages render in HTML, both docs UIs render
their operations (a docs page that loads but shows none is a failure), and a
purchase sent through the storefront's Swagger UI — "Authorize" with a bearer token,
then "Try it out" on POST /buy — is answered 201 and then shows up on the
storefront's browsable purchase list (opened with the same token).

Playwright never downloads a browser here: it drives Debian's `chromium`
(`scripts/setup-test.sh` installs it). A missing browser is a failure, not a skip.
A full-page screenshot of every step goes to test-artifacts/browser-*.png.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.browser.helpers import (
    UUID_RE,
    PageWatch,
    assert_operations_render,
    assert_styled,
    operation,
    screenshot,
    wait_for_purchase,
)
from tests.support import http

pytestmark = pytest.mark.browser

# -- tests ---------------------------------------------------------------------


def test_ledger_browsable_page_shows_a_users_purchase(stack, page, userid, artifacts):
    token = stack.issuer.token(userid)
    answer = http.post(
        f"{stack.storefront_url}/buy",
        json={"username": "browser-a", "userid": userid, "price": "12.34"},
        token=token,
    )
    assert answer.status_code == 201, answer.content
    purchase_id = answer.json()["data"]["purchase_id"]
    wait_for_purchase(stack, userid, purchase_id)

    watch = PageWatch(page)
    page.set_extra_http_headers({"Authorization": f"Bearer {token}"})
    response = page.goto(f"{stack.ledger_url}/purchases/{userid}")
    assert response.status == 200
    assert "text/html" in response.headers["content-type"]
    shown = page.locator(".response-info").inner_text()
    screenshot(page, artifacts, "a-ledger-purchases")
    assert userid in shown and purchase_id in shown and "12.34" in shown, shown
    assert re.search(r'"count":\s*1\b', shown), shown
    assert_styled(page)
    watch.assert_clean()


def test_purchase_through_the_storefront_docs_then_its_browsable_list(stack, page, userid, artifacts):
    watch = PageWatch(page)
    response = page.goto(f"{stack.storefront_url}/api/docs/")
    assert response.status == 200
    assert_operations_render(
        page, [("post", "/buy"), ("get", "/getAllUserBuys/{userid}"), ("get", "/health")]
    )
    assert_styled(page)
    screenshot(page, artifacts, "b1-storefront-docs")

    # (b) "Authorize" with the customer's token, then POST /buy through "Try it out".
    token = stack.issuer.token(userid)
    page.locator(".auth-wrapper button.authorize").click()
    dialog = page.locator(".modal-ux")
    dialog.locator("input").first.fill(token)
    dialog.locator("button.modal-btn.authorize").click()
    dialog.locator("button.btn-done").click()
    buy = operation(page, "post", "/buy")
    buy.locator(".opblock-summary").first.click()
    buy.get_by_role("button", name="Try it out").click()
    textarea = buy.locator("textarea.body-param__text")
    purchase = {"username": "browser-b", "userid": userid, "price": 29.99}
    textarea.fill(json.dumps(purchase, indent=2))
    buy.locator("button.execute").click()
    live = buy.locator(".live-responses-table tbody tr.response")
    live.first.wait_for()
    answered = live.locator(".response-col_status").first.inner_text().strip()
    answer = live.locator(".response-col_description pre").first
    answer.wait_for()
    answer_text = answer.inner_text()
    screenshot(page, artifacts, "b2-storefront-docs-buy")
    # The same answer up close: the live response row alone.
    live.first.screenshot(path=str(artifacts / "browser-b3-storefront-docs-buy-response.png"))
    assert answered == "201", f"POST /buy from the docs UI answered {answered}: {answer_text}"
    data = json.loads(answer_text)["data"]
    assert UUID_RE.fullmatch(data["purchase_id"]), data
    assert data["userid"] == userid and data["username"] == "browser-b", data
    assert data["purchase_id"] in answer_text
    watch.assert_clean()

    # (c) The storefront's browsable list shows it once the consumer has stored it.
    purchase_id = data["purchase_id"]
    deadline = time.monotonic() + 15
    page.set_extra_http_headers({"Authorization": f"Bearer {token}"})
    page.goto(f"{stack.storefront_url}/getAllUserBuys/{userid}")
    while True:
        assert "text/html" in (page.evaluate("document.contentType") or "")
        shown = page.locator(".response-info").inner_text()
        if purchase_id in shown or time.monotonic() > deadline:
            break
        page.wait_for_timeout(300)
        page.reload()
    screenshot(page, artifacts, "c-storefront-purchases")
    assert purchase_id in shown, f"purchase {purchase_id} not listed within 15 s:\n{shown}"
    assert userid in shown and "29.99" in shown, shown
    assert_styled(page)
    watch.assert_clean()


def test_ledger_docs_render_their_operations(stack, page, artifacts):
    watch = PageWatch(page)
    response = page.goto(f"{stack.ledger_url}/api/docs/")
    assert response.status == 200
    assert_operations_render(page, [("get", "/purchases/{userid}"), ("get", "/health")])
    assert_styled(page)
    screenshot(page, artifacts, "d-ledger-docs")
    watch.assert_clean()
