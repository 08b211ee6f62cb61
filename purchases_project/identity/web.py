"""Bearer tokens in Django and DRF views, with the verifier configured from settings.

Lifecycle: the process's `TokenVerifier` is created from the `AUTH_*` settings on the
first request that needs it (after the web server forks) and replaced when a test changes
those settings. Web processes check the settings at start (`check_settings`).
"""

from __future__ import annotations

import re
import threading
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from purchases_project.errors import json_response
from purchases_project.identity.tokens import AuthError, Jwks, Principal, TokenVerifier

# RFC 6750 2.1: credentials = "Bearer" 1*SP b64token (the scheme is case-insensitive).
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*)")

_verifier: TokenVerifier | None = None
_lock = threading.Lock()


def check_settings() -> None:
    """Raise ImproperlyConfigured, with what to set, unless tokens can be verified."""
    problems = []
    if not settings.AUTH_ISSUER:
        problems.append("AUTH_ISSUER (the issuer whose tokens this service accepts, its `iss`)")
    url = settings.AUTH_JWKS_URL
    if not url:
        problems.append("AUTH_JWKS_URL (the issuer's JWKS: an https:// URL or file:///path/jwks.json)")
    elif not (url.startswith("https://") or (url.startswith("file:///") and urlsplit(url).path != "/")):
        problems.append(f"AUTH_JWKS_URL as an https:// URL or file:///path/jwks.json (got {url!r})")
    if not settings.AUTH_AUDIENCE:
        problems.append("AUTH_AUDIENCE (default `purchases`) not empty")
    if not settings.AUTH_USERID_CLAIM:
        problems.append("AUTH_USERID_CLAIM (default `sub`) not empty")
    if problems:
        raise ImproperlyConfigured(
            "bearer tokens cannot be verified; set " + "; ".join(problems) + ". Verification cannot be off."
        )


def verifier() -> TokenVerifier:
    """The process's verifier, made from the settings on first use."""
    global _verifier
    current = _verifier
    if current is None:
        with _lock:
            if _verifier is None:
                check_settings()
                _verifier = TokenVerifier(
                    issuer=settings.AUTH_ISSUER,
                    audience=settings.AUTH_AUDIENCE,
                    jwks=Jwks(settings.AUTH_JWKS_URL, refetch_interval_s=settings.AUTH_JWKS_REFETCH_S),
                    userid_claim=settings.AUTH_USERID_CLAIM,
                )
            current = _verifier
    return current


def reset() -> None:
    """Forget the verifier (and its caches): the next request makes one from the settings."""
    global _verifier
    _verifier = None


@receiver(setting_changed)
def _settings_changed(setting: str, **kwargs) -> None:
    if setting.startswith("AUTH_"):
        reset()


def bearer_token(request: HttpRequest) -> str:
    """The token of the request's `Authorization: Bearer` header; AuthError("missing") without one."""
    match = _BEARER.fullmatch(request.META.get("HTTP_AUTHORIZATION", ""))
    if match is None:
        raise AuthError("missing")
    return match.group(1)


def authenticate(request: HttpRequest) -> Principal:
    """The verified customer of a plain Django view's request, or AuthError."""
    return verifier().verify(bearer_token(request))


def principal(request: Request) -> Principal:
    """`request.user` in a DRF view authenticated by `BearerTokenAuthentication`."""
    user = request.user
    assert isinstance(user, Principal), "BearerTokenAuthentication gives a Principal or fails the request"
    return user


def error_response(exc: AuthError) -> HttpResponse:
    """The JSON answer to a request that failed authentication (401 with its challenge, or 503)."""
    headers = {"WWW-Authenticate": exc.www_authenticate} if exc.www_authenticate else None
    return json_response({"error": exc.message}, status=exc.status, headers=headers)


class IssuerUnavailable(exceptions.APIException):
    status_code = 503
    default_code = "issuer_unavailable"


class BearerTokenAuthentication(BaseAuthentication):
    """DRF authentication by bearer token: `request.user` is the `Principal`, `request.auth` the token.

    Every request needs a token: a missing one fails too (401), so no permission class is needed.
    """

    def authenticate(self, request) -> tuple[Principal, str]:
        try:
            principal = authenticate(request)
        except AuthError as exc:
            request._auth_challenge = exc.www_authenticate
            if exc.status == 503:
                raise IssuerUnavailable(exc.message) from None
            raise exceptions.AuthenticationFailed(exc.message) from None
        return principal, principal.token

    def authenticate_header(self, request) -> str:
        return getattr(request, "_auth_challenge", None) or AuthError.CHALLENGE


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """The bearer security scheme in the OpenAPI document (the docs UI's "Authorize" button)."""

    target_class = BearerTokenAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
