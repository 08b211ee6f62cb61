"""Micro-benchmarks of the per-request work: `python -m bench.micro [pyperf options]`.

pyperf runs each in worker processes of its own (calibrated loops, warm-ups, several values
per process) and prints mean ± standard deviation; `--fast` for a quick look, `-o FILE.json`
to keep the figures for `python -m pyperf compare_to`. Measured in this process, no server:
- the `/buy` body: JSON parsed with exact decimals, the fields checked by the rules (a typical
  body, and a 64 KiB price of spaces, the largest body a client may send to be refused);
- the whole `/buy` view (cached token, body, checks, the event stamped, the 201 written) with a
  producer that acknowledges at once, with and without an `Idempotency-Key`;
- bearer token verification (`identity.authenticate(request)`, header parsing included):
  cold (a token the process has not seen: signature and claims, ES256 and RS256) and cached
  (a token seen before, whose validity window is still checked).
Exits non-zero if the cached verification is above its 100 µs target.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pyperf

TARGET_CACHED_US = 100.0
TYPICAL_BODY = b'{"username": "john", "userid": "user123", "price": 29.99}'
SPACES_PRICE_BODY = b'{"username": "john", "userid": "user123", "price": "' + b" " * (64 * 1024 - 60) + b'"}'


def _setup():
    from purchases_project.local_issuer import LocalIssuer

    issuer = LocalIssuer(Path(tempfile.mkdtemp(prefix="bench-micro-"))).ensure()
    os.environ.update(issuer.env())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "purchases_project.settings")
    import django
    from django.conf import settings

    django.setup()
    for name, value in issuer.env().items():
        setattr(settings, name, value)
    settings.IDEMPOTENCY_SECRET = os.environ.get("IDEMPOTENCY_SECRET") or "bench-" + "x" * 32
    settings.ALLOWED_HOSTS = ["testserver"]
    from purchases_project import identity

    identity.reset()
    return issuer


def _request(token: str):
    from django.http import HttpRequest

    request = HttpRequest()
    request.META["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return request


def buy_body(body: bytes) -> None:
    """What `POST /buy` does with a body before it publishes (storefront/apis.py)."""
    from purchases_project import jsonutil
    from purchases_project.rules import InvalidPurchase
    from storefront.apis import purchase_parse

    try:
        purchase_parse(jsonutil.loads(body), idempotency_key="k-1")
    except InvalidPurchase:
        pass


def buy_view(token: str, **headers: str):
    """A timer for pyperf: `loops` requests through the whole `/buy` view (storefront/apis.py),
    a producer that acknowledges at once standing in for the broker."""
    from django.test import RequestFactory

    from storefront import services
    from storefront.apis import PurchaseCreateApi

    class Acknowledging:
        def publish(self, topic, event, timeout):
            return None

    services.get_producer = Acknowledging  # type: ignore[assignment]
    view = PurchaseCreateApi.as_view()
    factory = RequestFactory()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}", **headers}

    def timed(loops: int) -> float:
        requests = [
            factory.post("/buy", TYPICAL_BODY, content_type="application/json", **auth) for _ in range(loops)
        ]
        started = time.perf_counter()
        for request in requests:
            view(request)
        return time.perf_counter() - started

    return timed


def cold(key):
    """A timer for pyperf: `loops` verifications of tokens this process has not seen."""
    from purchases_project import identity, local_issuer

    def timed(loops: int) -> float:
        claims = [local_issuer.claims_for(f"u{n}", scope="openid purchases:read") for n in range(loops)]
        requests = [_request(local_issuer.sign(key, c)) for c in claims]
        identity.verifier()._cache.clear()
        started = time.perf_counter()
        for request in requests:
            identity.authenticate(request)
        return time.perf_counter() - started

    return timed


def main() -> int:
    runner = pyperf.Runner(program_args=("-m", "bench.micro"))
    issuer = _setup()
    from purchases_project import identity, local_issuer

    rsa = local_issuer.new_key("RS256")
    issuer.jwks_path.write_text(json.dumps(local_issuer.jwks(issuer.key(), rsa)))
    cached_request = _request(issuer.token("user123", scope="openid purchases:read"))
    identity.authenticate(cached_request)  # the JWKS is fetched once, outside the measurement

    runner.bench_func("buy body: typical, parsed and checked", buy_body, TYPICAL_BODY)
    runner.bench_func("buy body: a 64 KiB price of spaces, refused", buy_body, SPACES_PRICE_BODY)
    buyer = issuer.token("user123")
    runner.bench_time_func("buy view: no Idempotency-Key", buy_view(buyer))
    runner.bench_time_func("buy view: with an Idempotency-Key", buy_view(buyer, HTTP_IDEMPOTENCY_KEY="k-1"))
    runner.bench_time_func("token: cold ES256", cold(issuer.key()))
    runner.bench_time_func("token: cold RS256", cold(rsa))
    cached = runner.bench_func("token: cached", identity.authenticate, cached_request)
    if cached is None or runner.args.worker:  # not run here, or a worker: the parent judges
        return 0
    mean_us = cached.mean() * 1e6
    verdict = "within" if mean_us <= TARGET_CACHED_US else "ABOVE"
    print(f"cached token verification {mean_us:.1f} us: {verdict} the {TARGET_CACHED_US:.0f} us target")
    return 0 if mean_us <= TARGET_CACHED_US else 1


if __name__ == "__main__":
    sys.exit(main())
