"""A bounded load of purchases for fault tests, and the exactly-once check after it."""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections import Counter
from decimal import Decimal

from devstack.stack import Stack, wait_until
from ledger.tests.helpers import summaries_match_purchases


class Load:
    """POSTs up to `count` purchases from `threads` threads (or until `stop()` or `seconds`),
    keeping what each 201 answered. Traffic goes to 127.0.0.1 only."""

    def __init__(self, stack: Stack, count: int, threads: int = 4, users: int = 20, seconds: float = 120):
        self.port = stack.ports.storefront
        self.count, self.threads, self.users, self.seconds = count, threads, users, seconds
        self.accepted: dict[str, tuple[str, Decimal]] = {}
        self.statuses: Counter = Counter()
        self.sent = 0
        self.run_id = uuid.uuid4().hex[:6]
        # One token per customer, minted once: the load measures the services, not the signing.
        self.headers = {
            userid: {
                "Content-Type": "application/json",
                "Authorization": f"Bearer {stack.issuer.token(userid)}",
            }
            for userid in (f"load-{self.run_id}-{n}" for n in range(users))
        }
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers = [threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(threads)]

    def start(self) -> Load:
        self._deadline = time.monotonic() + self.seconds
        for worker in self._workers:
            worker.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self) -> Load:
        for worker in self._workers:
            worker.join(self.seconds + 30)
        return self

    def wait_accepted(self, n: int, timeout: float = 60) -> None:
        wait_until(lambda: len(self.accepted) >= n, timeout, f"{n} purchases accepted")

    def _next(self) -> int | None:
        with self._lock:
            if self.sent >= self.count or self._stop.is_set() or time.monotonic() > self._deadline:
                return None
            self.sent += 1
            return self.sent

    def _work(self, worker: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while (n := self._next()) is not None:
            userid = f"load-{self.run_id}-{n % self.users}"
            price = Decimal(n % 5000) / 100
            body = json.dumps({"username": "load", "userid": userid, "price": str(price)})
            try:
                connection.request("POST", "/buy", body=body, headers=self.headers[userid])
                response = connection.getresponse()
                payload = response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                status, payload = "error", b""
                time.sleep(0.05)
            with self._lock:
                self.statuses[status] += 1
                if status == 201:
                    data = json.loads(payload)["data"]
                    self.accepted[data["purchase_id"]] = (userid, price)
        connection.close()


def assert_stored_exactly_once(
    stack: Stack, accepted: dict[str, tuple[str, Decimal]], timeout: float = 90
) -> None:
    """Every accepted purchase is in MongoDB once, with its price, and no summary drifts."""
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
