"""`manage.py ensure_indexes` as the initContainers and `make run` run it: a real process, a real database."""

import subprocess
import sys
import time
import uuid

import pymongo
import pytest

from devstack.stack import ROOT
from ledger.tests.helpers import unreachable_mongodb_uri


def ensure_indexes(env: dict, timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "manage.py", "ensure_indexes", "--timeout", str(timeout)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout + 60,
    )
    return result, time.monotonic() - started


def page_and_unique_indexes(client, database: str) -> dict:
    indexes = client[database]["purchases"].index_information()
    return {
        "unique": [i["key"] for i in indexes.values() if i.get("unique")],
        "page": indexes.get("userid_timestamp_purchase_id", {}).get("key"),
    }


EXPECTED = {"unique": [[("purchase_id", 1)]], "page": [("userid", 1), ("timestamp", 1), ("purchase_id", 1)]}


def test_creates_the_indexes_in_an_empty_database_and_exits_0(stack):
    database = f"idx_{uuid.uuid4().hex[:10]}"
    with stack.mongo() as client:
        try:
            assert database not in client.list_database_names()
            result, _ = ensure_indexes(stack.env(MONGODB_DATABASE=database), timeout=30)
            assert result.returncode == 0, result.stderr
            assert f"indexes ready on {database}.purchases" in result.stdout
            assert page_and_unique_indexes(client, database) == EXPECTED
            # The collections carry their schema: the server refuses a float price.
            with pytest.raises(pymongo.errors.WriteError, match="failed validation"):
                client[database]["purchases"].insert_one(
                    {"purchase_id": "p", "username": "u", "userid": "u", "price": 1.5, "timestamp": "t"}
                )
            options = client[database].command("listCollections", filter={"name": "purchases_user_summaries"})
            assert "$jsonSchema" in options["cursor"]["firstBatch"][0]["options"]["validator"]
            # Again: a no-op that still succeeds.
            again, _ = ensure_indexes(stack.env(MONGODB_DATABASE=database), timeout=30)
            assert again.returncode == 0, again.stderr
            assert page_and_unique_indexes(client, database) == EXPECTED
        finally:
            client.drop_database(database)


def test_waits_for_the_primary_to_come_back(make_stack):
    own = make_stack("stepdown")
    own.start_mongo()
    with own.mongo() as client:
        # A one-member replica set without a primary for 15 s, as after a restart or an election
        # (long enough that the command's own start-up on a busy machine cannot outlast it).
        client.admin.command({"replSetStepDown": 15, "force": True})
        assert client.admin.command("hello")["isWritablePrimary"] is False
        result, elapsed = ensure_indexes(own.env(), timeout=60)
        assert result.returncode == 0, result.stderr
        assert "waiting for a writable MongoDB primary" in result.stderr
        assert client.admin.command("hello")["isWritablePrimary"] is True
        assert page_and_unique_indexes(client, own.database) == EXPECTED
    assert elapsed < 60


def test_gives_up_after_the_deadline_with_a_clear_message(make_stack):
    env = make_stack("nothing").env(MONGODB_URI=unreachable_mongodb_uri())
    result, elapsed = ensure_indexes(env, timeout=3)
    assert result.returncode != 0
    assert "no writable MongoDB primary for database purchase_db within 3 s" in result.stderr
    assert "indexes not created" in result.stderr
    assert "ServerSelectionTimeoutError" in result.stderr
    # The deadline bounds it: one more server selection (2 s) at most, plus Django's start.
    assert 3 <= elapsed < 20, elapsed
