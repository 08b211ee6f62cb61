"""Who is calling: bearer tokens from the OpenID Connect issuer, verified once per request.

The one place that verifies tokens, for both web roles. In a plain Django view::

    try:
        principal = identity.authenticate(request)
    except identity.AuthError as exc:
        return identity.error_response(exc)

In a DRF view, `authentication_classes = [identity.BearerTokenAuthentication]`;
`request.user` is then the `Principal`, which `identity.principal(request)` returns
typed. `principal.may_read(userid)` is the object-level rule for reads;
`principal.token` is what the storefront forwards. A browser signed in with OpenID Connect
is the same `Principal`, from the session's access token (`identity.session`): a read view
takes `authentication_classes = identity.SESSION_OR_BEARER`, or calls `session_principal`.
"""

from purchases_project.identity.session import SessionTokenAuthentication, session_login, session_principal
from purchases_project.identity.tokens import READ_ALL_SCOPE, AuthError, Principal
from purchases_project.identity.web import (
    BearerTokenAuthentication,
    authenticate,
    bearer_token,
    check_settings,
    error_response,
    principal,
    reset,
    verifier,
)

# A signed-in browser's session first; any Authorization header goes to the bearer check.
SESSION_OR_BEARER = [SessionTokenAuthentication, BearerTokenAuthentication]

__all__ = [
    "READ_ALL_SCOPE",
    "SESSION_OR_BEARER",
    "AuthError",
    "BearerTokenAuthentication",
    "Principal",
    "SessionTokenAuthentication",
    "authenticate",
    "bearer_token",
    "check_settings",
    "error_response",
    "principal",
    "reset",
    "session_login",
    "session_principal",
    "verifier",
]
