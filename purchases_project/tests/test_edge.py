"""The public edge: security headers, the Content-Security-Policy of the HTML pages, HSTS
behind a TLS-terminating ingress."""

import pytest
from django.test import Client

pytestmark = pytest.mark.urls("storefront.urls")


def test_html_pages_carry_a_content_security_policy_without_inline_scripts():
    page = Client().get("/api/docs/")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    policy = dict(part.strip().split(" ", 1) for part in page["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self'"
    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert "<script>" not in page.content.decode()  # the start-up script is served from the app
    assert page["X-Frame-Options"] == "DENY"
    assert page["X-Content-Type-Options"] == "nosniff"


def test_json_answers_carry_no_policy_but_the_cheap_headers():
    response = Client().get("/health")
    assert response.status_code == 200
    assert "Content-Security-Policy" not in response
    assert response["X-Content-Type-Options"] == "nosniff"


def test_hsts_only_over_https_as_the_ingress_reports_it(settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 31536000
    over_https = Client().get("/health", HTTP_X_FORWARDED_PROTO="https")
    assert over_https["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in Client().get("/health")


def test_a_disallowed_host_is_a_json_400_logged_as_a_warning_without_traceback(caplog):
    with caplog.at_level("WARNING"):
        response = Client().get("/health", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response.json() == {"error": "The Host header names no host this service answers to"}
    records = [r for r in caplog.records if r.name.startswith("django.security")]
    assert records, "the disallowed host was not logged"
