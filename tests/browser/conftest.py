"""The browser: headless Debian Chromium driven by Playwright (never a browser download),
and a fresh page per test that may reach nothing beyond 127.0.0.1."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.browser.helpers import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS


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
