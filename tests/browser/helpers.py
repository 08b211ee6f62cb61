"""What the browser tests share: Debian's Chromium, watching a page for errors, screenshots,
axe-core's accessibility check and the width check."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import quote

from devstack.stack import wait_until
from tests.support import http

AXE = Path(__file__).resolve().parents[2] / "devstack" / "node_modules" / "axe-core" / "axe.min.js"

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

    def take(self) -> list[str]:
        """Everything seen since the last call, forgotten afterwards."""
        seen = self.failed + self.bad_status + self.errors
        self.failed, self.bad_status, self.errors = [], [], []
        return seen

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


def axe_violations(page) -> list[dict]:
    """axe-core's serious and critical violations on the page as it is now.

    axe-core comes from devstack/node_modules (npm, pinned); it is evaluated through the
    DevTools protocol, which the page's Content-Security-Policy does not govern, so the page
    itself still runs no script it did not serve."""
    if not AXE.is_file():
        raise AssertionError(f"{AXE} is missing: run `make setup` (npm ci in devstack/)")
    page.evaluate("source => { if (!window.axe) { (0, eval)(source); } }", AXE.read_text())
    results = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def assert_accessible(page) -> None:
    violations = axe_violations(page)
    assert not violations, "axe-core: " + json.dumps(violations, indent=1)


def assert_no_horizontal_scroll(page) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths[0]} px wide in {widths[1]} px"
