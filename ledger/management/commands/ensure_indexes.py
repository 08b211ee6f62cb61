"""`python manage.py ensure_indexes`: wait for a writable MongoDB primary, create the collections
with their `$jsonSchema` validators and the indexes, exit.

Run before the ledger and the consumer start (their Kubernetes initContainers, `make run`),
so the indexes never depend on which process happens to touch the collection first, nor on
the replica set having had a primary at that moment. Exits 0 once the indexes exist
(creating an existing index is a no-op); non-zero with the last error after the deadline.
"""

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from pymongo.errors import PyMongoError

from ledger import db
from ledger.services import indexes_ensure

MAX_BACKOFF_S = 5.0


class Command(BaseCommand):
    help = (
        "Wait (at most --timeout seconds) for a writable MongoDB primary, create the ledger's "
        "collections with their validators and their indexes on MONGODB_DATABASE, and exit. "
        "Safe to run any number of times."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--timeout", type=float, default=120.0, help="give up after this many seconds (default 120)"
        )

    def handle(self, *args, timeout: float, **options):
        deadline = time.monotonic() + timeout
        backoff = 0.25
        attempts = 0
        while True:
            attempts += 1
            try:
                if db.connect().admin.command("hello").get("isWritablePrimary"):
                    for warning in indexes_ensure():
                        self.stderr.write(warning)
                    break
                last = "the server answers but is not a writable primary"
            except PyMongoError as exc:
                # Also an authentication error: the user may be created a moment later.
                last = f"{type(exc).__name__}: {exc}"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CommandError(
                    f"no writable MongoDB primary for database {settings.MONGODB_DATABASE} within "
                    f"{timeout:g} s ({attempts} attempt{'s' if attempts > 1 else ''}); "
                    f"indexes not created. Last error: {last}"
                )
            if attempts == 1 or attempts % 10 == 0:
                self.stderr.write(f"waiting for a writable MongoDB primary: {last}")
            time.sleep(min(backoff, remaining))
            backoff = min(backoff * 2, MAX_BACKOFF_S)
        self.stdout.write(
            f"indexes ready on {settings.MONGODB_DATABASE}.{settings.MONGODB_COLLECTION} "
            f"(after {attempts} attempt{'s' if attempts > 1 else ''})"
        )
