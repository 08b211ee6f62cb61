"""The local token issuer for `make run` and the tests: a signing key and its JWKS.

`LocalIssuer(directory).ensure()` creates an ES256 key (`signing-key.pem`, mode 0600)
and its public JWKS (`jwks.json`) on first use and keeps them afterwards; `token()`
signs a token that the services configured with `env()` accept. `make run` uses
`.local/issuer/` (`default_issuer()`); every test stack has one of its own. The local OpenID
provider (devstack/oidc_provider.py) signs with the same key under the same issuer URL, so the
services accept its tokens and these alike.
`new_key()` and `sign()` make keys and tokens of one's own (tests).
Development only: production tokens come from the operator's OpenID Connect issuer.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIRECTORY = ROOT / ".local" / "issuer"
# `make run`'s OpenID provider (port 8089); a test stack's issuer names its own port.
ISSUER = "http://127.0.0.1:8089"
AUDIENCE = "purchases"
DAY_S = 24 * 3600


def new_key(alg: str = "ES256", kid: str | None = None) -> ECKey | RSAKey:
    """A fresh private signing key for `alg` (ES256 or RS256); `kid` defaults to its thumbprint."""
    key: ECKey | RSAKey
    if alg == "ES256":
        key = ECKey.generate_key("P-256", private=True)
    elif alg == "RS256":
        key = RSAKey.generate_key(2048, private=True)
    else:
        raise ValueError(f"unsupported algorithm {alg!r}")
    return _with_params(key, alg, kid)


def _with_params(key: ECKey | RSAKey, alg: str, kid: str | None = None) -> ECKey | RSAKey:
    kid = kid or key.thumbprint()
    return type(key).import_key(key.as_dict(private=True), {"kid": kid, "alg": alg, "use": "sig"})


def jwks(*keys: ECKey | RSAKey) -> dict:
    """The public JWK Set of `keys`."""
    return {"keys": [key.as_dict(private=False) for key in keys]}


def sign(key: ECKey | RSAKey, claims: dict, **header) -> str:
    """A compact JWS of `claims` signed with `key`; `header` adds to or overrides (None drops) its fields."""
    protected = {"typ": "JWT", "alg": key.alg, "kid": key.kid, **header}
    protected = {name: value for name, value in protected.items() if value is not None}
    return jws.serialize_compact(protected, json.dumps(claims, separators=(",", ":")), key)


def claims_for(
    userid: str, *, scope: str = "", ttl_s: int = DAY_S, issuer: str = ISSUER, audience: str = AUDIENCE
) -> dict:
    now = int(time.time())
    claims = {"iss": issuer, "aud": audience, "sub": userid, "iat": now, "nbf": now, "exp": now + ttl_s}
    if scope:
        claims["scope"] = scope
    return claims


class NoLocalKey(Exception):
    pass


class LocalIssuer:
    def __init__(self, directory: Path | str = DEFAULT_DIRECTORY, *, issuer: str = ISSUER):
        self.directory = Path(directory)
        self.issuer = issuer
        self.audience = AUDIENCE
        self.key_path = self.directory / "signing-key.pem"
        self.jwks_path = self.directory / "jwks.json"
        self._key: ECKey | RSAKey | None = None

    @property
    def jwks_url(self) -> str:
        return self.jwks_path.resolve().as_uri()

    def exists(self) -> bool:
        return self.key_path.is_file() and self.jwks_path.is_file()

    def ensure(self) -> LocalIssuer:
        """Create the key unless it exists, and its JWKS to match (safe when processes race)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.key_path.exists():
            pem = ECKey.generate_key("P-256", private=True).as_pem(private=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".key-")
            try:
                os.write(fd, pem)
                os.close(fd)
                os.link(tmp, self.key_path)  # fails if another process made the key first
            except FileExistsError:
                pass
            finally:
                os.unlink(tmp)
        public = jwks(self.key())
        if not self.jwks_path.is_file() or json.loads(self.jwks_path.read_text()) != public:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".jwks-", suffix=".json")
            with os.fdopen(fd, "w") as f:
                json.dump(public, f, indent=2)
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.jwks_path)
        return self

    def key(self) -> ECKey | RSAKey:
        if self._key is None:
            if not self.key_path.is_file():
                raise NoLocalKey(f"no local signing key at {self.key_path}")
            self._key = _with_params(ECKey.import_key(self.key_path.read_bytes()), "ES256")
        return self._key

    def token(self, userid: str, *, scope: str = "", ttl_s: int = DAY_S) -> str:
        """A token for `userid` (with `scope`, space-separated), valid for `ttl_s` seconds."""
        return sign(self.key(), claims_for(userid, scope=scope, ttl_s=ttl_s, issuer=self.issuer))

    def env(self) -> dict[str, str]:
        """The settings under which the services accept this issuer's tokens."""
        return {"AUTH_ISSUER": self.issuer, "AUTH_AUDIENCE": self.audience, "AUTH_JWKS_URL": self.jwks_url}


def default_issuer() -> LocalIssuer:
    """`make run`'s issuer under `.local/issuer/`, created on first use."""
    return LocalIssuer().ensure()
