"""`POST /buy`'s CPU per request in this process, without the broker: `python -m bench.buy_parse`.

Measures, as CPU microseconds per request (the best of `--rounds`):
- `parse+validate`: the body's JSON, the missing fields, the Idempotency-Key, price, username
  and userid, as the view does them;
- `view`: the whole `PurchaseCreateApi` view (a cached bearer token, the body read, the
  checks, the event stamped with its purchase_id, the 201 written) with a producer that
  acknowledges at once, with and without an Idempotency-Key;
- the refusal of hostile bodies that once cost milliseconds: a 64 KiB price of spaces, and
  kin of it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

BODY = b'{"username": "john", "userid": "user123", "price": 29.99}'
HOSTILE = {
    "price of 64 KiB spaces": b'{"username":"a","userid":"user123","price":"' + b" " * 65400 + b'"}',
    "price of 64 KiB zeros and x": b'{"username":"a","userid":"user123","price":"' + b"0" * 65400 + b'x"}',
    "price of 64 KiB digits": b'{"username":"a","userid":"user123","price":"' + b"9" * 65400 + b'"}',
}


def _setup(directory: Path):
    from bench.identity import _setup as identity_setup

    os.environ.setdefault("IDEMPOTENCY_SECRET", secrets.token_urlsafe(32))
    issuer = identity_setup(directory)
    from django.conf import settings

    settings.IDEMPOTENCY_SECRET = os.environ["IDEMPOTENCY_SECRET"]
    settings.ALLOWED_HOSTS = ["*"]

    class Acknowledging:
        def publish(self, topic, event, timeout):
            return None

    from storefront import services

    services.get_producer = Acknowledging  # type: ignore[assignment]
    return issuer


def _best_us(fn, items: list, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        batch = items() if callable(items) else items
        start = time.process_time()
        for item in batch:
            fn(item)
        best = min(best, (time.process_time() - start) / len(batch))
    return best * 1e6


def _key_rule():
    try:
        from purchases_project.rules import parse_idempotency_key
    except ImportError:  # before the key had a rule of its own
        return None
    return parse_idempotency_key


_parse_key = None


def _parse_validate(body: bytes, key: str | None = "k-1") -> None:
    from purchases_project import jsonutil
    from purchases_project.rules import (
        InvalidPurchase,
        missing_fields,
        parse_price,
        parse_userid,
        parse_username,
    )

    try:
        data = jsonutil.loads(body)
    except ValueError:
        return
    if not isinstance(data, dict) or missing_fields(data):
        return
    if _parse_key is not None:
        _parse_key(key)
    elif key is not None and not 0 < len(key) <= 255:  # the check before the key had a rule
        return
    try:
        parse_price(data["price"])
        parse_username(data["username"])
        parse_userid(data["userid"])
    except InvalidPurchase:
        return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-buy-") as tmp:
        issuer = _setup(Path(tmp))
        from django.test import RequestFactory

        from storefront.apis import PurchaseCreateApi

        view = PurchaseCreateApi.as_view()
        factory = RequestFactory()
        auth = {"HTTP_AUTHORIZATION": f"Bearer {issuer.token('user123')}"}

        def requests(**headers):
            return lambda: [
                factory.post("/buy", BODY, content_type="application/json", **auth, **headers)
                for _ in range(args.requests)
            ]

        def answer(request):
            response = view(request)
            assert response.status_code == 201, response.content

        global _parse_key
        _parse_key = _key_rule()
        results: dict[str, float] = {
            "parse+validate": _best_us(_parse_validate, [BODY] * args.requests, args.rounds),
            "view, no Idempotency-Key": _best_us(answer, requests(), args.rounds),
            "view, with Idempotency-Key": _best_us(answer, requests(HTTP_IDEMPOTENCY_KEY="k-1"), args.rounds),
        }
        for name, body in HOSTILE.items():
            results[f"refuse {name}"] = _best_us(_parse_validate, [body] * 20, args.rounds)

    width = max(map(len, results))
    print(f"POST /buy in process, CPU per request (best of {args.rounds} rounds):")
    for name, us in results.items():
        print(f"  {name:<{width}}  {us:10.1f} us")
    if args.json:
        args.json.write_text(json.dumps({"cpu_us_per_request": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
