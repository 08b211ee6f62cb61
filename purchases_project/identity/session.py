"""Who is signed in with a browser: the access token kept in the session, verified like a bearer token.

Browser sign-in (`purchases_project.web.signin`) keeps the access token the issuer gave at
sign-in in the session (a signed cookie; no database). Each request verifies it with the
process's `TokenVerifier`, the very check a bearer token gets, so the customer, their scopes
and therefore every access rule are the same whichever way a request comes in. A token that
no longer verifies (expired, key withdrawn) ends the session.

In a plain Django view `session_principal(request)` gives the `Principal` or None; in a DRF
view list `SessionTokenAuthentication` before `BearerTokenAuthentication`: a request with an
`Authorization` header is left to the bearer check, unchanged; one authenticated by its session
must carry Django's CSRF token on unsafe methods (403 JSON otherwise).
"""

from __future__ import annotations

import logging

from django.http import HttpRequest
from rest_framework.authentication import SessionAuthentication

from purchases_project.identity.tokens import AuthError, Principal
from purchases_project.identity.web import BearerTokenAuthentication, verifier

logger = logging.getLogger(__name__)

SESSION_TOKEN = "access_token"


def session_login(request: HttpRequest, token: str, *, expires_in: float | None) -> Principal:
    """Verify `token` and keep it as the session's; the session ends with it. Raises AuthError."""
    principal = verifier().verify(token)
    request.session.cycle_key()
    request.session[SESSION_TOKEN] = token
    if expires_in is not None:
        request.session.set_expiry(max(1, int(expires_in)))
    return principal


def session_principal(request: HttpRequest) -> Principal | None:
    """The customer the session's access token names, or None (no token, or one that fails)."""
    session = getattr(request, "session", None)
    if session is None:
        return None
    token = session.get(SESSION_TOKEN)
    if not isinstance(token, str):
        return None
    try:
        return verifier().verify(token)
    except AuthError as exc:
        if exc.reason != "unavailable":
            logger.info("session token refused (%s): signed out", exc.reason)
            session.flush()
        return None


class SessionTokenAuthentication(BearerTokenAuthentication):
    """DRF authentication by the signed-in session; None when there is none (the bearer check follows)."""

    def authenticate(self, request) -> tuple[Principal, str] | None:  # type: ignore[override]
        if "HTTP_AUTHORIZATION" in request.META:
            return None
        principal = session_principal(request._request)
        if principal is None:
            return None
        # DRF's own check: Django's CSRF rules on unsafe methods, PermissionDenied (403) without.
        SessionAuthentication().enforce_csrf(request)
        return principal, principal.token
