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
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from devstack.stack import wait_until
from tests.support import http

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


# -- helpers -------------------------------------------------------------------


def wait_for_purchase(stack, userid: str, purchase_id: str, timeout: float = 15.0) -> dict:
    """Until the storefront's JSON read path lists the purchase (the consumer has stored it)."""

    def ready():
        url = f"{stack.storefront_url}/getAllUserBuys/{quote(userid, safe='')}"
        response = http.get(url, token=stack.issuer.token(userid))
        if response.status_code != 200:
            return None
        data = response.json()
        return data if purchase_id in [p["purchase_id"] for p in data["purchases"]] else None

    return wait_until(ready, timeout, f"purchase {purchase_id} of {userid}", interval=0.1)


class PageWatch:
    """What a page did on the wire: failed loads, error statuses, console errors."""

    def __init__(self, page):
        self.failed: list[str] = []
        self.bad_status: list[str] = []
        self.errors: list[str] = []
        page.on("requestfailed", lambda r: self.failed.append(f"{r.method} {r.url}: {r.failure}"))
        page.on(
            "response",
            lambda r: (
                self.bad_status.append(f"{r.status} {r.request.resource_type} {r.url}")
                if r.status >= 400 and r.request.resource_type in ("stylesheet", "script", "image", "font")
                else None
            ),
        )
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on("console", self._console)

    def _console(self, message) -> None:
        if message.type == "error":
            self.errors.append(f"console error: {message.text}")

    def assert_clean(self):
        assert not self.failed, f"requests failed: {self.failed}"
        assert not self.bad_status, f"static files not served: {self.bad_status}"
        assert not self.errors, f"errors in the page: {self.errors}"


def assert_styled(page) -> None:
    """The page's own stylesheets loaded and hold rules (no unstyled page)."""
    sheets = page.evaluate(
        """() => Array.from(document.styleSheets).filter(s => s.href).map(s => {
               try { return [s.href, s.cssRules.length]; } catch (e) { return [s.href, -1]; }
           })"""
    )
    assert sheets, "the page links no stylesheet"
    empty = [href for href, rules in sheets if rules <= 0]
    assert not empty, f"stylesheets without rules (not served?): {empty}"


def screenshot(page, artifacts: Path, name: str) -> Path:
    path = artifacts / f"browser-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def operation(page, method: str, path: str):
    """One operation block of a Swagger UI page."""
    return page.locator(f".opblock.opblock-{method}").filter(
        has=page.locator(f'.opblock-summary-path[data-path="{path}"]')
    )


def assert_operations_render(page, expected: list[tuple[str, str]]) -> None:
    page.wait_for_selector(".opblock", timeout=TIMEOUT_MS)
    for method, path in expected:
        block = operation(page, method, path)
        assert block.count() == 1, f"{method.upper()} {path} not rendered in the docs UI"
        block.first.wait_for(state="visible", timeout=TIMEOUT_MS)
    errors = page.locator(".swagger-ui .errors-wrapper")
    assert errors.count() == 0, f"the docs UI shows errors: {errors.all_inner_texts()}"


# -- fixtures ------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium. Install it with "
            "`apt-get update && apt-get install -y --no-install-recommends chromium fonts-dejavu-core` "
            "(scripts/setup-test.sh does this as root).",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
    context.set_default_timeout(TIMEOUT_MS)
    outside: list[str] = []

    def local_only(route):
        # The stack is on 127.0.0.1: nothing may leave the machine (no CDN, no validator badge).
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", local_only)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()
    assert not outside, f"the page tried to reach beyond 127.0.0.1: {outside}"


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
