"""The ledger's MongoDB connection (used by the ledger API and the consumer).

Lifecycle: connected lazily on first use in each process (`purchases_project.per_process`:
a MongoClient does not survive the web server's fork, so a forked child connects anew);
`close()` when the process stops (registered in `ledger.apps` for web workers).
"""

import mongoengine
from django.conf import settings
from pymongo import MongoClient

from purchases_project.per_process import PerProcess


def _connect() -> MongoClient:
    # A client registered before a fork belongs to the parent: forget it here.
    mongoengine.disconnect()
    timeout = settings.MONGODB_TIMEOUT_MS
    return mongoengine.connect(
        db=settings.MONGODB_DATABASE,
        host=settings.MONGODB_URI,
        serverSelectionTimeoutMS=timeout,
        connectTimeoutMS=timeout,
        socketTimeoutMS=max(timeout * 5, 10000),
        uuidRepresentation="standard",
        tz_aware=True,
    )


_client = PerProcess(_connect)


def connect() -> MongoClient:
    return _client.get()


def ping() -> None:
    """Raises a pymongo error when the database does not answer."""
    connect().admin.command("ping")


def close() -> None:
    if _client.take() is not None:
        mongoengine.disconnect()
