"""Shared fixtures: one running stack for the whole session, on free ports of 127.0.0.1.

`stack` is the shared stack (broker, database, storefront, ledger, consumer as
real processes); its web services, and the views tests call in process, accept
tokens of the session's `token_issuer` (`bearer(userid)` makes the header). Tests that
break things start stacks of their own (`make_stack`), never touching the shared
one. `live_settings` points this process's Django settings at the shared stack,
for in-process tests that use Django's test client against the real broker and
database.
"""

import os
import secrets
import uuid
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from devstack.stack import Stack, free_port
from purchases_project.local_issuer import LocalIssuer

ARTIFACTS = Path(__file__).resolve().parent / "test-artifacts"

# Property tests run beside servers that load the machine: time is no property of the rules,
# so no example may fail for taking longer than Hypothesis's default 200 ms.
hypothesis_settings.register_profile("suite", deadline=None)
hypothesis_settings.load_profile("suite")


@pytest.fixture(scope="session")
def token_issuer(tmp_path_factory) -> LocalIssuer:
    """The token issuer of the tests: the shared stack and in-process views accept its tokens.

    Its URL is where the shared stack runs the local OpenID provider, which signs with its key."""
    issuer = f"http://127.0.0.1:{free_port()}"
    return LocalIssuer(tmp_path_factory.mktemp("issuer"), issuer=issuer).ensure()


@pytest.fixture(scope="session", autouse=True)
def _in_process_views_verify_the_test_issuers_tokens(token_issuer):
    from django.conf import settings

    from purchases_project import identity

    for name, value in token_issuer.env().items():
        setattr(settings, name, value)
    identity.reset()
    # In-process /buy derives Idempotency-Key ids as the stacks' storefronts do, with a secret.
    settings.IDEMPOTENCY_SECRET = secrets.token_urlsafe(32)
    # Sessions (browser sign-in) are signed cookies: in-process views need a key to sign them.
    if not os.environ.get("DJANGO_SECRET_KEY"):
        settings.SECRET_KEY = secrets.token_urlsafe(32)


@pytest.fixture(scope="session")
def bearer(token_issuer):
    """`bearer(userid, scope="")`: an Authorization header with a token of the test issuer."""

    def headers(userid: str, scope: str = "") -> dict[str, str]:
        return {"Authorization": f"Bearer {token_issuer.token(userid, scope=scope)}"}

    return headers


@pytest.fixture(scope="session")
def stack(tmp_path_factory, token_issuer):
    # The database runs with --auth and the services log in, as in production.
    s = Stack(
        tmp_path_factory.mktemp("shared-stack"),
        mongo_user="purchases",
        mongo_password=secrets.token_urlsafe(16),
        issuer=token_issuer,
        signin=True,  # browsers sign in with the local OpenID provider (tests/browser)
        # A key rotated into the JWKS is picked up within a second (tests/test_access.py).
        extra_env={"AUTH_JWKS_REFETCH_S": "1"},
    )
    try:
        s.start_all()
        yield s
    finally:
        s.stop()


@pytest.fixture
def make_stack(tmp_path):
    """Start stacks of one's own (for fault tests); every process is stopped afterwards."""
    made: list[Stack] = []

    def make(name: str = "stack", **kwargs) -> Stack:
        s = Stack(tmp_path / name, **kwargs)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


def _reset_clients() -> None:
    from ledger import db
    from storefront import ledger_client, producer

    producer.close_producer()
    db.close()
    ledger_client.close_session()


@pytest.fixture(scope="session")
def live_settings(stack):
    """Django settings of this test process, pointed at the shared stack."""
    from django.conf import settings

    env = stack.env()
    names = [
        "KAFKA_BOOTSTRAP_SERVERS",
        "MONGODB_URI",
        "MONGODB_DATABASE",
        "LEDGER_API_URL",
        "KAFKA_SESSION_TIMEOUT_MS",
        "KAFKA_HEARTBEAT_INTERVAL_MS",
        "KAFKA_TOPIC_PARTITIONS",
    ]
    saved = {name: getattr(settings, name) for name in names}
    for name in names:
        current = saved[name]
        setattr(settings, name, type(current)(env[name]))
    _reset_clients()
    yield settings
    for name, value in saved.items():
        setattr(settings, name, value)
    _reset_clients()


@pytest.fixture
def userid() -> str:
    """A user of one's own, so tests sharing the stack never see each other's purchases."""
    return f"u-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI (`CI=true`) nothing is skipped: a check that cannot run fails."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI", "").lower() == "true" and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, which counts as a failure: {report.longrepr}"
