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


def where_missing(stack: Stack, missing: list[str], most: int = 10, timeout: float = 15) -> str:
    """Accepted purchases that are not stored: where each is on the topic, and every line of
    the consumer's log that names it or its place, so a failure says which side lost it."""
    from tests.support import kafka

    wanted, places = set(missing[:most]), {}

    def all_placed(messages) -> bool:  # called after each poll: the newest message is the new one
        if messages and (purchase_id := kafka.purchase_id_of(messages[-1])) in wanted:
            places[purchase_id] = (messages[-1].partition(), messages[-1].offset())
        return len(places) == len(wanted)

    kafka.read(stack.bootstrap, "purchases", until=all_placed, timeout=timeout)
    log = (stack.workdir / "consumer.log").read_text(errors="replace").splitlines()
    lines = [f"{len(missing)} accepted purchases are not stored; the first {len(wanted)}:"]
    for purchase_id in sorted(wanted):
        place = places.get(purchase_id)
        lines.append(
            f"  {purchase_id}: "
            + (f"partition {place[0]} offset {place[1]}" if place else "not on the topic")
        )
        marks = [purchase_id] + ([f'"partition": {place[0]}, "offset": {place[1]},'] if place else [])
        lines += [f"    {line[:300]}" for line in log if any(mark in line for mark in marks)][:5]
    return "\n".join(lines)


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
        except TimeoutError:
            found = {
                d["purchase_id"] for d in purchases.find({"purchase_id": {"$in": ids}}, {"purchase_id": 1})
            }
            raise AssertionError(where_missing(stack, [i for i in ids if i not in found])) from None
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
