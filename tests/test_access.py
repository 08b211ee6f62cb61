"""Who may do what, on the running storefront and ledger of the shared stack.

Each token below is refused or accepted for one reason, and each answer is checked
for its exact status, body and RFC 6750 `WWW-Authenticate` challenge. The order of
checks is the contract's: the token (401), then the request itself (400), then
ownership (403).
"""

import base64
import hashlib
import hmac
import http.client
import json
import time

import pytest

from devstack.stack import wait_until
from purchases_project import identity
from purchases_project.local_issuer import claims_for, jwks, new_key, sign

MISSING = (401, 'Bearer realm="purchases"', "A bearer token is required")
INVALID = (401, 'Bearer realm="purchases", error="invalid_token"', "The bearer token is invalid")
EXPIRED = (401, 'Bearer realm="purchases", error="invalid_token"', "The bearer token has expired")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unsigned(header: dict, claims: dict) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"


def request(port: int, method: str, path: str, authorization: str | None = None, body: dict | None = None):
    headers = {"Host": "127.0.0.1", "Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("WWW-Authenticate"), json.loads(response.read())
    finally:
        connection.close()


def refused_tokens(stack, userid: str) -> dict[str, tuple[str | None, tuple]]:
    """Authorization header values for `userid` that must be refused, with the expected answer."""
    key = stack.issuer.key()
    good = claims_for(userid, issuer=stack.issuer.issuer)
    now = int(time.time())
    hs256 = unsigned({"alg": "HS256", "typ": "JWT", "kid": key.kid}, good)
    public_pem = key.as_pem(private=False)
    hs256 += "." + b64(hmac.new(public_pem, hs256.encode(), hashlib.sha256).digest())
    return {
        "no header": (None, MISSING),
        "not a bearer scheme": ("Basic dXNlcjpwYXNz", MISSING),
        "a bearer without a token": ("Bearer ", MISSING),
        "garbage": ("Bearer not-a-jwt", INVALID),
        "alg none": (
            "Bearer " + unsigned({"alg": "none", "typ": "JWT", "kid": key.kid}, good) + ".",
            INVALID,
        ),
        "HS256 signed with the public key": ("Bearer " + hs256, INVALID),
        "wrong iss": ("Bearer " + sign(key, {**good, "iss": "https://elsewhere.invalid"}), INVALID),
        "wrong aud": ("Bearer " + sign(key, {**good, "aud": "someone-else"}), INVALID),
        "expired": ("Bearer " + sign(key, {**good, "exp": now - 120}), EXPIRED),
        "not yet valid": ("Bearer " + sign(key, {**good, "nbf": now + 600}), INVALID),
        "unknown kid": ("Bearer " + sign(new_key(kid="nobody-knows-me"), good), INVALID),
        "signed by another key under a known kid": ("Bearer " + sign(new_key(kid=key.kid), good), INVALID),
    }


# The read endpoints of each service: the same rules for each.
READS = {
    "storefront": ("/getAllUserBuys/{}", "/getSpending/{}"),
    "ledger": ("/purchases/{}", "/spending/{}"),
}


@pytest.mark.parametrize("service", ["storefront", "ledger"])
def test_every_refused_token_gets_its_exact_401(stack, userid, service):
    port = stack.ports.storefront if service == "storefront" else stack.ports.ledger
    for case, (authorization, (status, challenge, message)) in refused_tokens(stack, userid).items():
        for path in READS[service]:
            got = request(port, "GET", path.format(userid), authorization)
            assert got == (status, challenge, {"error": message}), (case, path)
    # POST /buy checks the token before anything else, so even an empty body gets the 401.
    for case, (authorization, (status, challenge, message)) in refused_tokens(stack, userid).items():
        if service == "storefront":
            got = request(port, "POST", "/buy", authorization, body={})
            assert got == (status, challenge, {"error": message}), case


def test_a_customer_buys_and_reads_for_themselves_only(stack, userid, bearer):
    port = stack.ports.storefront
    mine = bearer(userid)["Authorization"]
    purchase = {"username": "ann", "userid": userid, "price": "3.50"}
    assert request(port, "POST", "/buy", mine, purchase)[0] == 201
    for path in READS["storefront"]:
        assert request(port, "GET", path.format(userid), mine)[0] == 200

    other = f"{userid}-other"
    status, challenge, body = request(port, "POST", "/buy", mine, {**purchase, "userid": other})
    assert (status, challenge) == (403, None) and "error" in body
    for path in READS["storefront"]:
        status, challenge, body = request(port, "GET", path.format(other), mine)
        assert (status, challenge) == (403, None) and "error" in body, path
    # The request itself is checked before ownership: a bad body is a 400 whoever sends it.
    status, _, body = request(port, "POST", "/buy", mine, {**purchase, "userid": other, "price": -1})
    assert (status, body) == (400, {"error": "Price cannot be negative"})


def test_support_staff_with_read_all_read_anyone_but_buy_for_no_one(stack, userid, bearer):
    support = bearer("support-1", scope=identity.READ_ALL_SCOPE)["Authorization"]
    for service, port in (("storefront", stack.ports.storefront), ("ledger", stack.ports.ledger)):
        for path in READS[service]:
            assert request(port, "GET", path.format(userid), support)[0] == 200, path
    purchase = {"username": "ann", "userid": userid, "price": "1.00"}
    assert request(stack.ports.storefront, "POST", "/buy", support, purchase)[0] == 403


def test_the_ledger_called_directly_wants_a_token_too(stack, userid, bearer):
    for path in READS["ledger"]:
        assert request(stack.ports.ledger, "GET", path.format(userid)) == (
            401,
            MISSING[1],
            {"error": MISSING[2]},
        )
        own = bearer(userid)["Authorization"]
        assert request(stack.ports.ledger, "GET", path.format(f"{userid}-x"), own)[0] == 403, path
    assert request(stack.ports.ledger, "GET", "/health")[0] == 200


def test_health_and_docs_stay_open(stack):
    for port in (stack.ports.storefront, stack.ports.ledger):
        for path in ("/health", "/api/schema/", "/api/docs/"):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
            try:
                connection.request("GET", path, headers={"Host": "127.0.0.1"})
                assert connection.getresponse().status == 200, path
            finally:
                connection.close()


def test_a_key_rotated_into_the_jwks_is_picked_up(stack, userid):
    """The operator's issuer publishes a new key beside the old one: tokens signed with it are
    accepted once the services refetch the JWKS (on the unknown kid; the shared stack allows a
    refetch a second), and tokens of the old key still are."""
    old = stack.issuer.key()
    rotated = new_key("RS256")
    jwks_path = stack.issuer.jwks_path
    original = jwks_path.read_text()
    token = "Bearer " + sign(rotated, claims_for(userid, issuer=stack.issuer.issuer))
    services = (
        (stack.ports.storefront, f"/getAllUserBuys/{userid}"),
        (stack.ports.ledger, f"/purchases/{userid}"),
    )
    try:
        jwks_path.write_text(json.dumps(jwks(old, rotated)))
        for port, path in services:
            # Every worker of the service picks it up (each refetches at most once a second here).
            wait_until(
                lambda: all(request(port, "GET", path, token)[0] == 200 for _ in range(6)),  # noqa: B023
                15,
                f"the rotated key accepted on port {port}",
                interval=0.2,
            )
        for port, path in services:
            assert request(port, "GET", path, "Bearer " + stack.issuer.token(userid))[0] == 200
    finally:
        jwks_path.write_text(original)
