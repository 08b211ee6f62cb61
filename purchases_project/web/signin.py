"""Browser sign-in with OpenID Connect, for both web roles (authlib's Django client).

`GET /login/?next=<local path>` sends the browser to the issuer (authorization code flow
with PKCE S256, `state` and `nonce`, kept in the session until the callback);
`GET /login/callback/` exchanges the code, checks the ID token (signature, issuer,
audience, nonce) and keeps the access token in the session (`identity.session`), which
verifies it like a bearer token on every request; `POST /logout/` (CSRF) ends the session.
Endpoints come from `AUTH_ISSUER`/.well-known/openid-configuration.

Lifecycle: one authlib client per process, made on first use from the settings (and made
again when a test changes them); it fetches the issuer's metadata and keys once.
Without `OIDC_CLIENT_ID` and `OIDC_CLIENT_SECRET` sign-in is off: `/login/` says so.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from urllib.parse import parse_qsl, urlsplit

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.django_client import OAuth
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_POST

from purchases_project import identity
from purchases_project.errors import json_error

logger = logging.getLogger(__name__)

NEXT = "signin_next"
CLIENT_NAME = "issuer"
OFF = "Browser sign-in is off on this service (set OIDC_CLIENT_ID and OIDC_CLIENT_SECRET)"

_client = None
_lock = threading.Lock()


def enabled() -> bool:
    return bool(settings.OIDC_CLIENT_ID and settings.OIDC_CLIENT_SECRET and settings.AUTH_ISSUER)


def issuer_problem(issuer: str) -> str | None:
    """Why `issuer` cannot be signed in with: https, or http on a loopback address only."""
    parts = urlsplit(issuer)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname:
        host = parts.hostname
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return None
    return f"AUTH_ISSUER must be https:// (http only on a loopback address) for sign-in (got {issuer!r})"


def client():
    """The process's authlib client for the issuer, made from the settings on first use."""
    global _client
    with _lock:
        if _client is None:
            oauth = OAuth()
            _client = oauth.register(
                CLIENT_NAME,
                client_id=settings.OIDC_CLIENT_ID,
                client_secret=settings.OIDC_CLIENT_SECRET,
                server_metadata_url=settings.AUTH_ISSUER.rstrip("/") + "/.well-known/openid-configuration",
                client_kwargs={
                    "scope": settings.OIDC_SCOPE,
                    "code_challenge_method": "S256",
                    "default_timeout": 5,  # every call to the issuer: metadata, keys, token
                },
                authorize_params=dict(parse_qsl(settings.OIDC_AUTH_PARAMS)),
            )
        return _client


@receiver(setting_changed)
def _settings_changed(setting: str, **kwargs) -> None:
    global _client
    if setting.startswith(("OIDC_", "AUTH_")):
        _client = None


def local_path(candidate: str | None) -> str:
    """`candidate` when it is a path on this service, else `/` (no open redirect)."""
    if (
        candidate
        and candidate.startswith("/")
        and not candidate.startswith(("//", "/\\"))
        and url_has_allowed_host_and_scheme(candidate, allowed_hosts=set())
    ):
        return candidate
    return "/"


def callback_url(request: HttpRequest) -> str:
    public = settings.PUBLIC_BASE_URL
    return f"{public}/login/callback/" if public else request.build_absolute_uri("/login/callback/")


def _unavailable(message: str, status: int = 503) -> HttpResponse:
    return json_error(message, status)


@require_GET
def login(request: HttpRequest) -> HttpResponse:
    if not enabled():
        return _unavailable(OFF, 404)
    if problem := issuer_problem(settings.AUTH_ISSUER):
        logger.error("sign-in: %s", problem)
        return _unavailable("Sign-in is misconfigured on this service")
    request.session[NEXT] = local_path(request.GET.get("next"))
    try:
        return client().authorize_redirect(request, callback_url(request))
    except (AuthlibBaseError, requests.RequestException, ValueError) as exc:
        logger.warning("sign-in: the issuer's metadata could not be had: %s", exc)
        return _unavailable("Sign-in is unavailable: the issuer does not answer")


@require_GET
def callback(request: HttpRequest) -> HttpResponse:
    if not enabled():
        return _unavailable(OFF, 404)
    try:
        token = client().authorize_access_token(request)
    except AuthlibBaseError as exc:
        # A refused sign-in, a replayed or foreign `state`, a bad ID token or nonce.
        logger.info("sign-in refused: %s", exc)
        return json_error("Sign-in failed; start again from /login/", 400)
    except requests.RequestException as exc:
        logger.warning("sign-in: the issuer's token endpoint failed: %s", exc)
        return _unavailable("Sign-in is unavailable: the issuer does not answer")
    if "userinfo" not in token:  # authlib checked the ID token and its nonce
        return json_error("Sign-in failed: the issuer sent no ID token", 400)
    expires_at = token.get("expires_at")
    try:
        principal = identity.session_login(
            request,
            token["access_token"],
            expires_in=None if expires_at is None else expires_at - time.time(),
        )
    except identity.AuthError as exc:
        # The issuer must give a JWT for AUTH_AUDIENCE that the bearer check accepts.
        logger.warning("sign-in: the issuer's access token failed verification (%s)", exc.reason)
        return json_error("Sign-in failed: the issuer's access token is not accepted here", 502)
    next_path = local_path(request.session.pop(NEXT, None))
    logger.info("signed in", extra={"userid": principal.userid})
    return HttpResponseRedirect(next_path)


@require_POST
@csrf_protect
def logout(request: HttpRequest) -> HttpResponse:
    request.session.flush()
    return HttpResponseRedirect("/")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """Django's CSRF refusal, as the contract's JSON error."""
    return json_error("CSRF verification failed: reload the page and try again", 403)
