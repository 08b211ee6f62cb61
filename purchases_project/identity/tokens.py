"""Bearer token verification against an OpenID Connect issuer's JWKS (no Django here).

`TokenVerifier.verify(token)` returns a `Principal` or raises `AuthError`. Rules: the
signature against a key of the issuer's JWKS, RS256 or ES256 only (`none` and HS* are
refused, whatever the key), the `iss` and `aud` claims, `exp` (required) and `nbf`
with at most `MAX_SKEW_S` of clock skew, and the customer in `userid_claim`.

Lifecycle: one verifier per process, created on first use. Its `Jwks` fetches the
key set on the first verification, again for a `kid` it does not hold (at most once
per `REFETCH_INTERVAL_S`) and once the set is `MAX_KEYS_AGE_S` old; a failed fetch
keeps the keys it had. Verified tokens are kept (at most `TOKEN_CACHE_SIZE`) with
their validity window, which is checked again on every use, and the key set they
were verified under: once the set changes they are verified again, so a key
withdrawn from the JWKS stops its tokens.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwk import ECKey, RSAKey, import_key
from joserfc.jws import JWSRegistry
from joserfc.jwt import JWTClaimsRegistry

logger = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "ES256")
READ_ALL_SCOPE = "purchases:read-all"
MAX_SKEW_S = 60
REFETCH_INTERVAL_S = 60.0
# After a failed fetch with no keys held, the next request may try again this soon.
RETRY_WITHOUT_KEYS_S = 5.0
MAX_KEYS_AGE_S = 3600.0
TOKEN_CACHE_SIZE = 4096
MAX_TOKEN_LENGTH = 8192
MAX_JWKS_BYTES = 1 << 20
JWKS_TIMEOUT_S = 5.0

Clock = Callable[[], float]


class AuthError(Exception):
    """Why a request is not authenticated; `reason` picks the public message and status.

    "missing" (no or malformed Authorization header), "invalid", "expired": 401 with an
    RFC 6750 challenge. "unavailable": the issuer's keys could not be had, 503.
    """

    MESSAGES = {
        "missing": "A bearer token is required",
        "invalid": "The bearer token is invalid",
        "expired": "The bearer token has expired",
        "unavailable": "Tokens cannot be verified now: the issuer's keys are unavailable",
    }
    CHALLENGE = 'Bearer realm="purchases"'

    def __init__(self, reason: str):
        if reason not in self.MESSAGES:
            raise ValueError(f"unknown reason {reason!r}")
        self.reason = reason
        super().__init__(self.MESSAGES[reason])

    @property
    def message(self) -> str:
        return self.MESSAGES[self.reason]

    @property
    def status(self) -> int:
        return 503 if self.reason == "unavailable" else 401

    @property
    def www_authenticate(self) -> str | None:
        """The `WWW-Authenticate` value this failure answers with (None for a 503)."""
        if self.reason == "missing":
            return self.CHALLENGE
        if self.reason == "unavailable":
            return None
        return f'{self.CHALLENGE}, error="invalid_token"'


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified customer: who it is, what the token allows, and the token to forward."""

    userid: str
    scopes: frozenset[str]
    token: str = field(repr=False)

    def may_read(self, userid: str) -> bool:
        return userid == self.userid or READ_ALL_SCOPE in self.scopes


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urlsplit(newurl).scheme != "https":
            raise ValueError(f"the JWKS URL redirects to a non-https URL: {newurl!r}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_opener = urllib.request.build_opener(_HttpsOnlyRedirects)


def fetch_jwks(url: str) -> dict:
    """The JWK Set document at `url` (https:// or file:///path)."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        with open(Path(url2pathname(parts.path)), "rb") as f:
            raw = f.read(MAX_JWKS_BYTES + 1)
    elif parts.scheme == "https":
        with _opener.open(url, timeout=JWKS_TIMEOUT_S) as response:
            raw = response.read(MAX_JWKS_BYTES + 1)
    else:
        raise ValueError(f"a JWKS URL must be https:// or file:/// (got {url!r})")
    if len(raw) > MAX_JWKS_BYTES:
        raise ValueError("the JWKS document is too large")
    document = json.loads(raw)
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("the JWKS document has no list of keys")
    return document


def signing_keys(document: dict) -> dict[str, RSAKey | ECKey]:
    """The keys of a JWKS that may verify our tokens, by `kid`; others are left out."""
    keys: dict[str, RSAKey | ECKey] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        kty, alg = entry.get("kty"), entry.get("alg")
        usable = (kty == "RSA" and alg in (None, "RS256")) or (
            kty == "EC" and entry.get("crv") == "P-256" and alg in (None, "ES256")
        )
        if not usable or entry.get("use", "sig") != "sig":
            continue
        try:
            key = import_key(entry)
        except (JoseError, ValueError, TypeError) as exc:
            logger.warning("JWKS key %r left out: %s", entry["kid"], exc)
            continue
        assert isinstance(key, RSAKey | ECKey), "`usable` admits RSA and EC entries only"
        if isinstance(key, RSAKey) and key.raw_value.key_size < 2048:
            continue
        keys[entry["kid"]] = key
    return keys


class Jwks:
    """The issuer's signing keys, parsed once and refetched under the rules above."""

    def __init__(
        self,
        url: str,
        *,
        clock: Clock = time.time,
        fetch: Callable[[str], dict] = fetch_jwks,
        refetch_interval_s: float = REFETCH_INTERVAL_S,
    ):
        self.url = url
        self.refetch_interval_s = refetch_interval_s
        self._clock = clock
        self._fetch = fetch
        self._keys: dict[str, RSAKey | ECKey] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._tried_at: float | None = None  # last attempt, successful or not
        self._lock = threading.Lock()
        self.generation = 0  # goes up whenever the set of keys changes
        self.fetches = 0

    def key(self, kid: str) -> RSAKey | ECKey | None:
        key = self._keys.get(kid)
        now = self._clock()
        if key is not None and not self._stale(now):
            return key
        with self._lock:
            if kid not in self._keys or self._stale(now):
                since = None if self._tried_at is None else abs(now - self._tried_at)
                wait = self.refetch_interval_s if self._keys else RETRY_WITHOUT_KEYS_S
                if since is None or since >= wait:
                    self._refresh(now)
            if not self._keys:
                raise AuthError("unavailable")
            return self._keys.get(kid)

    def _stale(self, now: float) -> bool:
        return self._fetched_at is not None and abs(now - self._fetched_at) >= MAX_KEYS_AGE_S

    def _refresh(self, now: float) -> None:
        self._tried_at = now
        self.fetches += 1
        try:
            keys = signing_keys(self._fetch(self.url))
        except (OSError, ValueError, http.client.HTTPException) as exc:
            logger.warning("could not fetch the JWKS from %s: %s", self.url, exc)
            return
        self._fetched_at = now
        public = {kid: key.as_dict() for kid, key in keys.items()}
        if public != {kid: key.as_dict() for kid, key in self._keys.items()}:
            if not keys:
                logger.warning("the JWKS at %s holds no usable signing key", self.url)
            self._keys = keys
            self.generation += 1


class TokenVerifier:
    """Verifies bearer tokens for one issuer and audience (see the module docstring)."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks: Jwks,
        userid_claim: str = "sub",
        clock: Clock = time.time,
        cache_size: int = TOKEN_CACHE_SIZE,
    ):
        self.issuer = issuer
        self.audience = audience
        self.userid_claim = userid_claim
        self.jwks = jwks
        self._clock = clock
        # token -> (principal, nbf, exp, the key set's generation it was verified under)
        self._cache: dict[str, tuple[Principal, float, float, int]] = {}
        self._cache_size = cache_size
        # Unknown header parameters that are not "crit" are ignored, as RFC 7515 asks.
        self._jws = JWSRegistry(algorithms=list(ALGORITHMS), strict_check_header=False)
        self._claims = JWTClaimsRegistry(
            now=lambda: int(self._clock()),
            leeway=MAX_SKEW_S,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
        )

    def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None and cached[3] == self.jwks.generation:
            principal, not_before, expires, _ = cached
            now = self._clock()
            if now >= expires + MAX_SKEW_S:
                self._cache.pop(token, None)
                raise AuthError("expired")
            if now < not_before - MAX_SKEW_S:
                raise AuthError("invalid")
            return principal
        generation = self.jwks.generation
        principal, not_before, expires = self._verify(token)
        if len(self._cache) >= self._cache_size:
            try:
                del self._cache[next(iter(self._cache))]
            except (StopIteration, KeyError, RuntimeError):
                pass  # another thread evicted or cleared it first
        self._cache[token] = (principal, not_before, expires, generation)
        return principal

    def _verify(self, token: str) -> tuple[Principal, int | float, int | float]:
        if len(token) > MAX_TOKEN_LENGTH:
            raise AuthError("invalid")
        try:
            claims = jwt.decode(token, self._key_for, registry=self._jws).claims
            self._claims.validate(claims)
        except ExpiredTokenError:
            raise AuthError("expired") from None
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            logger.debug("token refused: %s", type(exc).__name__)
            raise AuthError("invalid") from None
        userid = claims.get(self.userid_claim)
        scope = claims.get("scope", "")
        if not isinstance(userid, str) or not userid or not isinstance(scope, str):
            raise AuthError("invalid")
        principal = Principal(userid=userid, scopes=frozenset(scope.split(" ")) - {""}, token=token)
        # Kept as given: an int too large for a float still compares correctly.
        return principal, claims.get("nbf", float("-inf")), claims["exp"]

    def _key_for(self, obj) -> RSAKey | ECKey:
        headers = obj.headers()
        kid = headers.get("kid")
        key = self.jwks.key(kid) if isinstance(kid, str) else None
        if key is None:
            raise AuthError("invalid")
        # joserfc uses an RSA key only for RS256 and a P-256 key only for ES256; `signing_keys`
        # left out keys whose declared `alg` says otherwise.
        return key
