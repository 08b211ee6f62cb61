"""Inputs an attacker controls, sent to the real storefront and ledger processes of the shared
stack: every one gets a 4xx with a JSON `error`, and nothing is logged as a server error.

The corpus holds the inputs that once answered 500 and their relatives: huge exponents,
deep nesting, dates that overflow when moved to UTC, cursors that decode to broken text,
userids that cannot be addressed, non-ASCII digits, chunked bodies, a disallowed Host.
"""

import base64
import http.client
import json
from urllib.parse import quote

import pytest

from purchases_project import identity

HOSTILE_BODIES = [
    b'{"username":"u","userid":"x","price":1e99999999999999999999}',
    b'{"username":"u","userid":"x","price":"1e-99999999999999999999"}',
    b'{"username":"u","userid":"x","price":1e-99999999999999999999}',
    b'{"username":"u","userid":"x","price":' + b"9" * 5000 + b"}",
    b"[" * 1000 + b"]" * 1000,
    b'{"a":' * 1000 + b"1" + b"}" * 1000,
    b'{"username":"u","userid":"x","price":"\\u0662\\u0669.\\u0669\\u0669"}',
    b'{"username":"u","userid":"x","price":"\\uff12\\uff19.\\uff19\\uff19"}',
    b'{"username":"u","userid":"x","price":"\\u200329.99"}',
    b'{"username":"u","userid":".","price":1}',
    b'{"username":"u","userid":"..","price":1}',
    b'{"username":"u","userid":"\\ud800","price":1}',
    b'{"username":"\\ud800","userid":"x","price":1}',
    b'{"username":"a\\u200bb","userid":"x","price":1}',
    b'{"username":"u","userid":"x","price":"0.0000000001e10"}',
    b'\xff\xfe{"username":"u"}',
    b'{"username":"a","userid":"x","price":1,"extra": 1e99999999999999999999}',
    b'{"username":"a","userid":"x","price":1,"extra":[{"deep":-1e-99999999999999999999}]}',
    b'{"username":"a","userid":"x","price":"' + b" " * 65400 + b'"}',
    b'{"username":"a\\udb40\\udc01","userid":"x","price":1}',  # U+E0001, a format character
]


def _cursor(*parts) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


HOSTILE_QUERIES = [
    "since=0001-01-01T00:00:00%2B14:00&until=0000-01-01T00:00:00Z&limit=0",
    "cursor=" + _cursor("\ud800", "x"),
    "cursor=" + quote("20260115103000123456_\ud800", errors="surrogatepass"),
    "since=2026-13-45T99:99:99Z",
    "since=%ff%fe",
    "until=" + "9" * 5000,
    "limit=" + "9" * 5000,
    "limit=1e3",
    "limit=%D9%A1",  # an Arabic-Indic one
    "limit=5.0",
    "order=%ff%fe",
    "order=" + "desc" * 2000,
    "order=%00",
]
HOSTILE_MONTHS = [
    "since=2026-13",
    "since=2026-00&until=2026-01",
    "until=2026-1",
    "since=%ff%fe",
    "since=2026-11%0A",
    "until=" + "9" * 5000,
    "since=%D9%A2%D9%A0%D9%A2%D9%A6-11",  # Arabic-Indic digits
    "since=",
]
HOSTILE_USERIDS = ["%00", "a" * 5000, "%2e%2e%2fx", "%ED%A0%80", "%FF", "a%20b", "%E2%80%8B"]


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.request(method, path, body=body, headers={"Host": "127.0.0.1", **(headers or {})})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()


def assert_client_error(answer):
    status, content_type, body = answer
    assert 400 <= status < 500, (status, body[:300])
    assert content_type == "application/json", (status, content_type, body[:300])
    assert isinstance(json.loads(body)["error"], str)


@pytest.fixture(scope="module")
def web(stack, bearer):
    """The two web processes' ports and a valid token (the checks below come after the token's),
    and a check that they logged no server error meanwhile."""
    logs = {role: stack.procs[role].log for role in ("storefront", "ledger")}
    offsets = {role: log.stat().st_size for role, log in logs.items()}
    yield {
        "storefront": stack.ports.storefront,
        "ledger": stack.ports.ledger,
        "auth": bearer("x", scope=identity.READ_ALL_SCOPE),
    }
    for role, log in logs.items():
        with log.open("rb") as handle:
            handle.seek(offsets[role])
            written = handle.read().decode(errors="replace")
        assert '"level": "ERROR"' not in written and "Traceback" not in written, f"{role} logged:\n{written}"


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
def test_hostile_bodies_are_400(web, body):
    answer = request(
        web["storefront"], "POST", "/buy", body, {"Content-Type": "application/json", **web["auth"]}
    )
    assert_client_error(answer)
    assert answer[0] == 400


@pytest.mark.parametrize("service", ["storefront", "ledger"])
@pytest.mark.parametrize("query", HOSTILE_QUERIES, ids=range(len(HOSTILE_QUERIES)))
def test_hostile_page_parameters_are_400(web, service, query):
    path = "/getAllUserBuys/u-hostile" if service == "storefront" else "/purchases/u-hostile"
    assert_client_error(request(web[service], "GET", f"{path}?{query}", headers=web["auth"]))


@pytest.mark.parametrize("service", ["storefront", "ledger"])
@pytest.mark.parametrize("query", HOSTILE_MONTHS, ids=range(len(HOSTILE_MONTHS)))
def test_hostile_months_are_400(web, service, query):
    path = "/getSpending/u-hostile" if service == "storefront" else "/spending/u-hostile"
    answer = request(web[service], "GET", f"{path}?{query}", headers=web["auth"])
    assert_client_error(answer)
    assert answer[0] == 400


READ_PATHS = {"storefront": ("/getAllUserBuys/", "/getSpending/"), "ledger": ("/purchases/", "/spending/")}


@pytest.mark.parametrize("service", ["storefront", "ledger"])
@pytest.mark.parametrize("userid", HOSTILE_USERIDS, ids=range(len(HOSTILE_USERIDS)))
def test_unaddressable_userids_are_400(web, service, userid):
    for path in READ_PATHS[service]:
        status, _, body = answer = request(web[service], "GET", path + userid, headers=web["auth"])
        assert_client_error(answer)
        assert status in (400, 404), (path, body)


@pytest.mark.parametrize("service", ["storefront", "ledger"])
def test_moments_beyond_the_calendar_are_clamped_not_refused(web, service):
    path = "/getAllUserBuys/u-hostile" if service == "storefront" else "/purchases/u-hostile"
    query = "since=0001-01-01T00:00:00%2B14:00&until=9999-12-31T23:59:59-14:00"
    status, _, body = request(web[service], "GET", f"{path}?{query}", headers=web["auth"])
    assert status == 200, body
    assert json.loads(body)["purchases"] == []


@pytest.mark.parametrize("service", ["storefront", "ledger"])
def test_a_disallowed_host_is_a_json_400(web, service):
    assert_client_error(request(web[service], "GET", "/health", headers={"Host": "evil.example"}))


def post_chunked(port: int, pieces: list[bytes], headers: dict) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.putrequest("POST", "/buy")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Transfer-Encoding", "chunked")
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        for piece in pieces:
            connection.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        connection.send(b"0\r\n\r\n")
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_a_chunked_body_is_read(web, userid, bearer):
    body = json.dumps({"username": "chunky", "userid": userid, "price": "4.20"}).encode()
    status, answer = post_chunked(web["storefront"], [body[:10], body[10:]], bearer(userid))
    assert status == 201, answer
    assert answer["data"]["userid"] == userid and answer["data"]["price"] == 4.2


def test_a_chunked_body_over_the_limit_is_413(web):
    status, answer = post_chunked(web["storefront"], [b" " * 16384] * 5, web["auth"])  # 80 KiB: over 64 KiB
    assert status == 413 and "error" in answer


@pytest.mark.parametrize("key", ["café".encode(), "ключ".encode() * 40, b"\xff"])
def test_a_non_ascii_idempotency_key_is_told_it_is_not_ascii(web, key):
    status, _, body = answer = request(
        web["storefront"],
        "POST",
        "/buy",
        b'{"username":"a","userid":"x","price":1}',
        {"Content-Type": "application/json", "Idempotency-Key": key, **web["auth"]},
    )
    assert_client_error(answer)
    message = json.loads(body)["error"]
    assert status == 400 and "printable ASCII" in message and "255" not in message, message
