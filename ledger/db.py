"""The ledger's MongoDB connection (used by the ledger API and the consumer).

Lifecycle: connected lazily on first use in each process (a MongoClient does not
survive the web server's fork), re-connected if the PID changes; `close()` at exit.
"""

import os
import threading

import mongoengine
from django.conf import settings
from pymongo import MongoClient

_lock = threading.Lock()
_pid: int | None = None


def connect() -> MongoClient:
    global _pid
    if _pid != os.getpid():
        with _lock:
            if _pid != os.getpid():
                if _pid is not None:
                    mongoengine.disconnect()
                timeout = settings.MONGODB_TIMEOUT_MS
                mongoengine.connect(
                    db=settings.MONGODB_DATABASE,
                    host=settings.MONGODB_URI,
                    serverSelectionTimeoutMS=timeout,
                    connectTimeoutMS=timeout,
                    socketTimeoutMS=max(timeout * 5, 10000),
                    uuidRepresentation="standard",
                    tz_aware=True,
                )
                _pid = os.getpid()
    return mongoengine.get_connection()


def ping() -> None:
    """Raises a pymongo error when the database does not answer."""
    connect().admin.command("ping")


def close() -> None:
    global _pid
    with _lock:
        if _pid == os.getpid():
            mongoengine.disconnect()
        _pid = None
