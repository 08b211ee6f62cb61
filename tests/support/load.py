"""A bounded load of purchases on a stack's storefront, and the exactly-once check after it."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from decimal import Decimal

import requests

from devstack.stack import Stack, wait_until
from ledger.tests.helpers import monthly_totals_match_summaries, summaries_match_purchases
from tests.support.http import Client


class Load:
    """POSTs up to `count` purchases from `threads` threads (or until `stop()` or `seconds`),
    keeping what each 201 answered. With `rate`, request n leaves at start + n / rate.
    The customers are `userids`, else `users` of the load's own. Traffic goes to 127.0.0.1 only."""

    def __init__(
        self,
        stack: Stack,
        count: int,
        threads: int = 4,
        users: int = 20,
        seconds: float = 120,
        rate: float | None = None,
        userids: list[str] | None = None,
    ):
        self.url = stack.storefront_url
        self.count, self.threads, self.seconds, self.rate = count, threads, seconds, rate
        self.accepted: dict[str, tuple[str, Decimal]] = {}
        self.statuses: Counter = Counter()
        # (time.monotonic(), error) of every request that got no answer at all.
        self.errors: list[tuple[float, str]] = []
        self.sent = 0
        self.elapsed = 0.0
        run_id = uuid.uuid4().hex[:6]
        self.userids = userids or [f"load-{run_id}-{n}" for n in range(users)]
        # One token per customer, minted once: the load measures the services, not the signing.
        self.tokens = {userid: stack.issuer.token(userid) for userid in self.userids}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers = [threading.Thread(target=self._work, daemon=True) for _ in range(threads)]

    def start(self) -> Load:
        self._started = time.monotonic()
        self._deadline = self._started + self.seconds
        for worker in self._workers:
            worker.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self) -> Load:
        for worker in self._workers:
            worker.join(self.seconds + 30)
        self.elapsed = time.monotonic() - self._started
        return self

    def wait_accepted(self, n: int, timeout: float = 60) -> None:
        wait_until(lambda: len(self.accepted) >= n, timeout, f"{n} purchases accepted")

    def _next(self) -> int | None:
        with self._lock:
            if self.sent >= self.count or self._stop.is_set() or time.monotonic() > self._deadline:
                return None
            self.sent += 1
            return self.sent

    def _pace(self, n: int) -> None:
        if self.rate is not None:
            delay = self._started + (n - 1) / self.rate - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)

    def _work(self) -> None:
        with Client(self.url) as client:
            while (n := self._next()) is not None:
                self._pace(n)
                userid = self.userids[n % len(self.userids)]
                price = Decimal(n % 5000) / 100
                body = {"username": "load", "userid": userid, "price": str(price)}
                error = None
                try:
                    response = client.post("/buy", json=body, token=self.tokens[userid])
                    status = response.status_code
                except requests.RequestException as exc:
                    status, response, error = "error", None, (time.monotonic(), repr(exc))
                    self._stop.wait(0.05)  # a refused connection: do not spin while a process restarts
                with self._lock:
                    self.statuses[status] += 1
                    if error is not None:
                        self.errors.append(error)
                    if status == 201:
                        data = response.json()["data"]
                        self.accepted[data["purchase_id"]] = (userid, price)


def assert_stored_exactly_once(
    stack: Stack, accepted: dict[str, tuple[str, Decimal]], timeout: float = 90
) -> None:
    """Every accepted purchase is in MongoDB once, with its price, no summary drifts, and every
    user's months add up to their summary."""
    assert accepted, "the load had no accepted purchase"
    ids = list(accepted)
    with stack.mongo() as client:
        database = client[stack.database]
        purchases = database["purchases"]

        def all_there() -> bool:
            return purchases.count_documents({"purchase_id": {"$in": ids}}) >= len(ids)

        try:
            wait_until(all_there, timeout, "every accepted purchase stored", interval=0.5)
        finally:
            stored = purchases.count_documents({"purchase_id": {"$in": ids}})
            print(f"accepted {len(ids)}, stored {stored}")
        duplicated = list(
            purchases.aggregate(
                [{"$group": {"_id": "$purchase_id", "n": {"$sum": 1}}}, {"$match": {"n": {"$gt": 1}}}]
            )
        )
        assert duplicated == []
        for doc in purchases.find({"purchase_id": {"$in": ids[:200]}}):
            assert (doc["userid"], doc["price"].to_decimal()) == accepted[doc["purchase_id"]]
        assert summaries_match_purchases(database) == {}
        assert monthly_totals_match_summaries(database) == {}
