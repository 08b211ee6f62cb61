"""The local OpenID provider (devstack/oidc-provider.mjs, on Node) for `make run` and the tests.

`OidcProvider(issuer, ports)` knows the provider's settings: its issuer URL (an http URL on
127.0.0.1, from the local issuer), the services' client ids and secrets with their callback
URLs (127.0.0.1 and localhost), and the settings each web role signs in with (`role_env`).
`start(spawn)` runs it through the stack's `spawn` and waits for its discovery document.
Development only: the Node packages come from devstack/package-lock.json (`npm ci`).
"""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path
from urllib.parse import urlsplit

from devstack.processes import Proc, http_ok, wait_until
from purchases_project.local_issuer import LocalIssuer

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "oidc-provider.mjs"
MODULES = HERE / "node_modules"
ROLES = ("storefront", "ledger")


def node() -> str:
    found = shutil.which("node")
    if not found or not (MODULES / "oidc-provider").is_dir():
        raise RuntimeError(
            "the local OpenID provider needs Node.js 20+ and its packages: run `make setup` "
            "(scripts/setup.sh runs `npm ci` in devstack/)"
        )
    return found


class OidcProvider:
    def __init__(self, issuer: LocalIssuer, ports, token_ttl_s: int = 3600):
        parts = urlsplit(issuer.issuer)
        if parts.scheme != "http" or parts.hostname != "127.0.0.1" or not parts.port:
            raise ValueError(f"the local provider runs on http://127.0.0.1:PORT (issuer {issuer.issuer!r})")
        self.issuer = issuer
        self.ports = ports  # the stack's Ports: each web role's port is its attribute
        self.token_ttl_s = token_ttl_s
        self.secrets = {role: secrets.token_urlsafe(32) for role in ROLES}

    @property
    def url(self) -> str:
        return self.issuer.issuer

    def callback_urls(self, role: str) -> list[str]:
        port = getattr(self.ports, role)
        return [f"http://{host}:{port}/login/callback/" for host in ("127.0.0.1", "localhost")]

    def role_env(self, role: str) -> dict[str, str]:
        """The settings under which `role` signs browsers in with this provider."""
        return {
            "OIDC_CLIENT_ID": role,
            "OIDC_CLIENT_SECRET": self.secrets[role],
            "OIDC_SCOPE": "openid purchases:read-all",
            # Every sign-in shows the form, so one browser can sign in as someone else.
            "OIDC_AUTH_PARAMS": "prompt=login",
        }

    def env(self) -> dict[str, str]:
        clients = [
            {"client_id": r, "client_secret": self.secrets[r], "redirect_uris": self.callback_urls(r)}
            for r in ROLES
        ]
        key = self.issuer.key()
        return {
            "OIDC_PROVIDER_ISSUER": self.url,
            "OIDC_PROVIDER_KEY": str(self.issuer.key_path),
            "OIDC_PROVIDER_KID": str(key.kid),
            "OIDC_PROVIDER_AUDIENCE": self.issuer.audience,
            "OIDC_PROVIDER_CLIENTS": json.dumps(clients),
            "OIDC_PROVIDER_TOKEN_TTL_S": str(self.token_ttl_s),
        }

    def start(self, spawn, base_env: dict[str, str]) -> Proc:
        proc = spawn("oidc", [node(), str(SCRIPT)], env={**base_env, **self.env()}, stop_grace=5.0)
        discovery = f"{self.url}/.well-known/openid-configuration"

        def ready() -> bool:
            if not proc.alive():
                raise RuntimeError(f"the OpenID provider exited early:\n{proc.output()[-3000:]}")
            return http_ok(discovery)

        wait_until(ready, 30, "the OpenID provider")
        return proc
