"""Browser sign-in in process (Django's test client) against the shared stack's OpenID provider.

The provider is real (devstack/oidc-provider.mjs); its sign-in form is filled in over HTTP
with `requests`, and the callback comes back to the test client, whose session cookie holds
what `/login/` put there.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from devstack.stack import free_port
from purchases_project import identity
from purchases_project.identity.session import SESSION_TOKEN
from purchases_project.web import signin

pytestmark = pytest.mark.urls("storefront.urls")


@pytest.fixture
def oidc(settings, stack):
    """This process's settings as the shared stack's storefront signs in with."""
    for name, value in stack.oidc.role_env("storefront").items():
        setattr(settings, name, value)
    # The callback registered with the provider is the stack's storefront's.
    settings.PUBLIC_BASE_URL = stack.storefront_url
    return stack.oidc


def provider_sign_in(authorize_url: str, username: str, *, support: bool = False) -> str:
    """Fill in the provider's form; the URL it sends the browser back to (the callback)."""
    browser = requests.Session()
    response = browser.get(authorize_url, timeout=10)
    assert response.status_code == 200, response.text
    action = re.search(r'<form method="post" action="([^"]+)"', response.text).group(1)
    form = {"username": username, **({"support": "yes"} if support else {})}
    response = browser.post(urljoin(response.url, action), data=form, allow_redirects=False, timeout=10)
    while response.status_code in (302, 303):
        location = urljoin(response.url, response.headers["Location"])
        if "/login/callback/" in location:
            return location
        response = browser.get(location, allow_redirects=False, timeout=10)
    raise AssertionError(f"the provider did not send the browser back: {response.status_code}")


def sign_in(client, username: str, *, support: bool = False, next_path: str | None = None):
    start = client.get("/login/", {"next": next_path} if next_path else {})
    assert start.status_code == 302, start.content
    back = provider_sign_in(start["Location"], username, support=support)
    parts = urlsplit(back)
    return client.get(parts.path + "?" + parts.query)


def test_sign_in_is_off_without_a_client(client, settings):
    settings.OIDC_CLIENT_ID = ""
    response = client.get("/login/")
    assert response.status_code == 404
    assert response.json() == {"error": signin.OFF}
    page = client.get("/")
    assert b"Sign-in is off on this service" in page.content


def test_login_redirects_to_the_issuer_with_pkce_state_and_nonce(client, oidc, stack):
    response = client.get("/login/", {"next": "/getAllUserBuys/me"})
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}" == oidc.url
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == "storefront"
    assert query["redirect_uri"] == f"{stack.storefront_url}/login/callback/"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 20 and len(query["nonce"]) >= 20
    assert query["prompt"] == "login"  # OIDC_AUTH_PARAMS
    cookie = response.cookies["web_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"]


def test_a_whole_sign_in_then_the_same_rules_as_a_bearer_token(client, oidc, live_settings):
    back = sign_in(client, "signin-alice", next_path="/getAllUserBuys/signin-alice?limit=5")
    assert back.status_code == 302
    assert back["Location"] == "/getAllUserBuys/signin-alice?limit=5"
    # The session ends with the access token (the provider's tokens last an hour).
    assert 3500 < int(back.cookies["web_session"]["max-age"]) <= 3600
    token = client.session[SESSION_TOKEN]
    principal = identity.verifier().verify(token)
    assert principal.userid == "signin-alice" and identity.READ_ALL_SCOPE not in principal.scopes
    own = client.get("/getAllUserBuys/signin-alice")
    assert own.status_code == 200 and own.json()["userid"] == "signin-alice"
    other = client.get("/getAllUserBuys/someone-else")
    assert other.status_code == 403
    page = client.get("/")
    assert b"Your purchases, signin-alice" in page.content
    assert client.get("/?userid=someone-else").status_code == 403


def test_support_staff_sign_in_grants_read_all(client, oidc, live_settings):
    sign_in(client, "signin-support", support=True)
    assert identity.READ_ALL_SCOPE in identity.verifier().verify(client.session[SESSION_TOKEN]).scopes
    assert client.get("/getAllUserBuys/someone-else").status_code == 200
    page = client.get("/?userid=someone-else")
    assert page.status_code == 200
    assert b"Purchases of someone-else" in page.content and b"Record a purchase" not in page.content


@pytest.mark.parametrize("foreign", ["//evil.example/", "https://evil.example/x", "/\\evil.example", "evil"])
def test_a_foreign_next_is_ignored(client, oidc, foreign):
    back = sign_in(client, "signin-next", next_path=foreign)
    assert back.status_code == 302 and back["Location"] == "/"


def test_a_callback_with_a_foreign_state_is_refused(client, oidc):
    client.get("/login/")
    response = client.get("/login/callback/", {"code": "x", "state": "not-the-one-we-sent"})
    assert response.status_code == 400
    assert "Sign-in failed" in response.json()["error"]
    assert SESSION_TOKEN not in client.session


def test_logout_needs_the_csrf_token(oidc, live_settings):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    sign_in(client, "signin-bob")
    refused = client.post("/logout/")
    assert refused.status_code == 403
    assert refused.json() == {"error": "CSRF verification failed: reload the page and try again"}
    assert SESSION_TOKEN in client.session
    page = client.get("/")
    csrf = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content).group(1).decode()
    done = client.post("/logout/", {"csrfmiddlewaretoken": csrf})
    assert done.status_code == 302 and done["Location"] == "/"
    assert SESSION_TOKEN not in client.session
    assert client.get("/getAllUserBuys/signin-bob").status_code == 401


def test_a_session_whose_token_no_longer_verifies_is_signed_out(client, token_issuer, oidc):
    session = client.session
    session[SESSION_TOKEN] = token_issuer.token("signin-late", ttl_s=-300)
    session.save()
    client.cookies["web_session"] = session.session_key
    response = client.get("/getAllUserBuys/signin-late")
    assert response.status_code == 401
    assert b"Sign in</a>" in client.get("/").content


def test_a_bearer_request_ignores_the_session_and_needs_no_csrf(client, token_issuer, bearer, live_settings):
    from django.test import Client

    session = client.session
    session[SESSION_TOKEN] = token_issuer.token("signin-carol")
    session.save()
    strict = Client(enforce_csrf_checks=True)
    strict.cookies["web_session"] = session.session_key
    # The header decides: another customer's token is refused for carol's purchases.
    response = strict.get("/getAllUserBuys/signin-carol", headers=bearer("signin-dave"))
    assert response.status_code == 403
    body = {"username": "x", "userid": "signin-dave", "price": 1}
    answer = strict.post("/buy", body, content_type="application/json", headers=bearer("signin-dave"))
    assert answer.status_code == 201, answer.content  # no CSRF refusal for a bearer request
    # /buy skips sessions and CSRF altogether (purchases_project/web/middleware.py): it sets no
    # cookie, and its Vary is its own, the one every answer that carries a purchase has.
    assert not answer.cookies and answer["Vary"] == "Authorization, Cookie"


def test_cookies_are_secure_behind_https(client, oidc, settings):
    settings.PUBLIC_BASE_URL = "https://shop.example"
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True  # as settings.py derives them
    response = client.get("/login/")
    assert response.status_code == 302
    assert response.cookies["web_session"]["secure"]


def test_local_path():
    assert signin.local_path("/getAllUserBuys/a?limit=2") == "/getAllUserBuys/a?limit=2"
    for foreign in (None, "", "//evil", "https://evil/", "/\\evil", "javascript:alert(1)", "evil"):
        assert signin.local_path(foreign) == "/"


def test_issuer_problem():
    assert signin.issuer_problem("https://id.example.com/realms/shop") is None
    assert signin.issuer_problem("http://127.0.0.1:8089") is None
    assert signin.issuer_problem("http://localhost:8089") is None
    assert signin.issuer_problem("http://id.example.com") is not None


def test_login_when_the_issuer_does_not_answer_or_is_not_https(client, settings):
    settings.OIDC_CLIENT_ID, settings.OIDC_CLIENT_SECRET = "storefront", "secret"
    settings.AUTH_ISSUER = f"http://127.0.0.1:{free_port()}"
    response = client.get("/login/")
    assert response.status_code == 503
    assert response.json() == {"error": "Sign-in is unavailable: the issuer does not answer"}
    settings.AUTH_ISSUER = "http://id.example.com"
    response = client.get("/login/")
    assert response.status_code == 503
    assert response.json() == {"error": "Sign-in is misconfigured on this service"}
