"""Token verification rules (pure logic: keys made here, JWKS in a local file, a fake clock)."""

import base64
import hashlib
import hmac
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc.jwk import ECKey

from purchases_project import local_issuer
from purchases_project.identity.tokens import (
    MAX_KEYS_AGE_S,
    AuthError,
    Jwks,
    Principal,
    TokenVerifier,
)

ISSUER = "https://id.example.test/realms/shop"
AUDIENCE = "purchases"


class Clock:
    def __init__(self):
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(data: dict) -> str:
    return b64(json.dumps(data).encode())


class Issuer:
    """An issuer of one's own: keys, a JWKS file it can rewrite, tokens."""

    def __init__(self, tmp_path, clock, *keys):
        self.clock = clock
        self.path = tmp_path / "jwks.json"
        self.publish(*keys)

    def publish(self, *keys):
        self.path.write_text(json.dumps(local_issuer.jwks(*keys)))

    def claims(self, userid="user123", **overrides):
        now = int(self.clock())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": userid, "iat": now, "nbf": now, "exp": now + 600}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def verifier(self, **kwargs) -> TokenVerifier:
        jwks = Jwks(self.path.as_uri(), clock=self.clock)
        return TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks, clock=self.clock, **kwargs)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def key():
    return local_issuer.new_key("ES256")


@pytest.fixture
def issuer(tmp_path, clock, key):
    return Issuer(tmp_path, clock, key)


def refused(verifier, token) -> str:
    with pytest.raises(AuthError) as info:
        verifier.verify(token)
    return info.value.reason


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_es256_and_rs256_tokens_are_accepted(tmp_path, clock, alg):
    key = local_issuer.new_key(alg)
    issuer = Issuer(tmp_path, clock, key)
    principal = issuer.verifier().verify(local_issuer.sign(key, issuer.claims(scope="a b")))
    assert principal == Principal(userid="user123", scopes=frozenset({"a", "b"}), token=principal.token)


def test_alg_none_is_refused(issuer, key):
    token = f"{b64json({'alg': 'none', 'typ': 'JWT', 'kid': key.kid})}.{b64json(issuer.claims())}."
    assert refused(issuer.verifier(), token) == "invalid"


@pytest.mark.parametrize("secret_form", ["pem", "jwk"])
def test_hs256_signed_with_the_public_key_is_refused(issuer, key, secret_form):
    public = ECKey.import_key(key.as_dict(private=False))
    secret = public.as_pem(private=False) if secret_form == "pem" else json.dumps(public.as_dict()).encode()
    signing_input = f"{b64json({'alg': 'HS256', 'typ': 'JWT', 'kid': key.kid})}.{b64json(issuer.claims())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    assert refused(issuer.verifier(), f"{signing_input}.{b64(signature)}") == "invalid"


@pytest.mark.parametrize(
    "overrides",
    [
        {"iss": "https://elsewhere.example.test"},
        {"iss": None},
        {"aud": "another-service"},
        {"aud": ["another-service", "account"]},
        {"aud": None},
        {"exp": None},
        {"sub": None},
        {"sub": ""},
        {"scope": ["purchases:read-all"]},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_claims_that_do_not_fit_are_refused(issuer, key, overrides):
    assert refused(issuer.verifier(), local_issuer.sign(key, issuer.claims(**overrides))) == "invalid"


def test_an_audience_list_holding_ours_is_accepted(issuer, key):
    token = local_issuer.sign(key, issuer.claims(aud=["account", AUDIENCE]))
    assert issuer.verifier().verify(token).userid == "user123"


def test_expired_beyond_the_skew_is_refused_as_expired(issuer, key, clock):
    token = local_issuer.sign(key, issuer.claims(exp=int(clock()) - 61))
    assert refused(issuer.verifier(), token) == "expired"


def test_not_yet_valid_beyond_the_skew_is_refused(issuer, key, clock):
    token = local_issuer.sign(key, issuer.claims(nbf=int(clock()) + 61))
    assert refused(issuer.verifier(), token) == "invalid"


def test_issued_in_the_future_beyond_the_skew_is_refused(issuer, key, clock):
    token = local_issuer.sign(key, issuer.claims(iat=int(clock()) + 120))
    assert refused(issuer.verifier(), token) == "invalid"


def test_clock_skew_within_60_seconds_is_accepted(issuer, key, clock):
    verifier = issuer.verifier()
    now = int(clock())
    assert verifier.verify(local_issuer.sign(key, issuer.claims(exp=now - 59))).userid == "user123"
    assert verifier.verify(local_issuer.sign(key, issuer.claims(nbf=now + 59, iat=now + 59))).userid


def test_a_signature_by_another_key_with_the_same_kid_is_refused(issuer, key):
    impostor = local_issuer.new_key("ES256", kid=key.kid)
    assert refused(issuer.verifier(), local_issuer.sign(impostor, issuer.claims())) == "invalid"


@pytest.mark.parametrize("declared", [True, False], ids=["jwk-with-alg", "jwk-without-alg"])
def test_a_key_is_used_only_with_its_own_algorithm(tmp_path, clock, declared):
    rsa, ec = local_issuer.new_key("RS256"), local_issuer.new_key("ES256")
    issuer = Issuer(tmp_path, clock, rsa, ec)
    if not declared:
        document = local_issuer.jwks(rsa, ec)
        for entry in document["keys"]:
            del entry["alg"]
        issuer.path.write_text(json.dumps(document))
    verifier = issuer.verifier()
    es256_naming_the_rsa_key = local_issuer.sign(local_issuer.new_key("ES256", kid=rsa.kid), issuer.claims())
    rs256_naming_the_ec_key = local_issuer.sign(local_issuer.new_key("RS256", kid=ec.kid), issuer.claims())
    assert refused(verifier, es256_naming_the_rsa_key) == "invalid"
    assert refused(verifier, rs256_naming_the_ec_key) == "invalid"
    assert verifier.verify(local_issuer.sign(rsa, issuer.claims())).userid == "user123"


def test_a_token_without_kid_or_malformed_is_refused(issuer, key):
    verifier = issuer.verifier()
    token = local_issuer.sign(key, issuer.claims(), kid=None)
    assert refused(verifier, token) == "invalid"
    for junk in ("abc", "a.b.c", "a.b", f"{token}.x", "x" * 9000):
        assert refused(verifier, junk) == "invalid"


def test_the_userid_comes_from_the_configured_claim(issuer, key):
    token = local_issuer.sign(key, issuer.claims(customer_id="c-42"))
    assert issuer.verifier(userid_claim="customer_id").verify(token).userid == "c-42"
    assert refused(issuer.verifier(userid_claim="customer_id"), local_issuer.sign(key, issuer.claims()))


def test_may_read_own_purchases_or_any_with_read_all():
    customer = Principal(userid="user123", scopes=frozenset({"openid"}), token="secret-token")
    support = Principal(userid="support1", scopes=frozenset({"purchases:read-all"}), token="t")
    assert customer.may_read("user123") and not customer.may_read("user456")
    assert support.may_read("user456")
    assert "secret-token" not in repr(customer)


def test_an_unknown_kid_refetches_at_most_once_a_minute(issuer, key, clock):
    verifier = issuer.verifier()
    verifier.verify(local_issuer.sign(key, issuer.claims()))
    assert verifier.jwks.fetches == 1
    stranger = local_issuer.new_key("ES256")
    assert refused(verifier, local_issuer.sign(stranger, issuer.claims())) == "invalid"
    assert verifier.jwks.fetches == 1  # the first fetch was less than a minute ago
    clock.now += 60
    assert refused(verifier, local_issuer.sign(stranger, issuer.claims())) == "invalid"
    assert verifier.jwks.fetches == 2  # refetched once
    for _ in range(20):
        clock.now += 2
        refused(verifier, local_issuer.sign(local_issuer.new_key("ES256"), issuer.claims()))
    assert verifier.jwks.fetches == 2
    clock.now += 30
    refused(verifier, local_issuer.sign(stranger, issuer.claims()))
    assert verifier.jwks.fetches == 3


def test_a_key_rotated_in_the_jwks_is_picked_up_and_the_old_one_dropped(issuer, key, clock):
    verifier = issuer.verifier()
    old_token = local_issuer.sign(key, issuer.claims())
    verifier.verify(old_token)
    new_key = local_issuer.new_key("ES256")
    issuer.publish(new_key)
    clock.now += 61
    new_token = local_issuer.sign(new_key, issuer.claims())
    assert verifier.verify(new_token).userid == "user123"
    assert verifier.jwks.fetches == 2
    # The old key left the JWKS: its tokens stop, cached or not.
    assert refused(verifier, old_token) == "invalid"


def test_new_key_published_beside_the_old_one_keeps_both_working(issuer, key, clock):
    verifier = issuer.verifier()
    verifier.verify(local_issuer.sign(key, issuer.claims()))
    second = local_issuer.new_key("RS256")
    issuer.publish(key, second)
    clock.now += 60
    assert verifier.verify(local_issuer.sign(second, issuer.claims(sub="u2"))).userid == "u2"
    assert verifier.verify(local_issuer.sign(key, issuer.claims(sub="u3"))).userid == "u3"


def test_the_token_cache_still_refuses_a_token_once_expired(issuer, key, clock):
    verifier = issuer.verifier()
    token = local_issuer.sign(key, issuer.claims(exp=int(clock()) + 10))
    assert verifier.verify(token).userid == "user123"
    assert token in verifier._cache
    clock.now += 10 + 59
    assert verifier.verify(token).userid == "user123"  # within the skew
    clock.now += 1
    assert refused(verifier, token) == "expired"
    assert token not in verifier._cache


def test_the_token_cache_is_bounded(issuer, key):
    verifier = issuer.verifier(cache_size=3)
    tokens = [local_issuer.sign(key, issuer.claims(sub=f"u{i}")) for i in range(5)]
    for token in tokens:
        verifier.verify(token)
    assert len(verifier._cache) == 3
    assert list(verifier._cache) == tokens[2:]


def test_no_jwks_means_unavailable_and_it_is_retried_soon(issuer, key, clock):
    issuer.path.unlink()
    verifier = issuer.verifier()
    token = local_issuer.sign(key, issuer.claims())
    error = pytest.raises(AuthError, verifier.verify, token).value
    assert (error.reason, error.status, error.www_authenticate) == ("unavailable", 503, None)
    issuer.publish(key)
    clock.now += 1
    assert refused(verifier, token) == "unavailable"  # not fetched again so soon
    clock.now += 5
    assert verifier.verify(token).userid == "user123"


def test_keys_are_refreshed_when_old_and_kept_when_the_refresh_fails(issuer, key, clock):
    verifier = issuer.verifier()
    verifier.verify(local_issuer.sign(key, issuer.claims(sub="a")))
    issuer.path.write_text("not json")
    clock.now += MAX_KEYS_AGE_S
    assert verifier.verify(local_issuer.sign(key, issuer.claims(sub="b"))).userid == "b"
    assert verifier.jwks.fetches == 2


def test_unusable_keys_in_the_jwks_are_left_out(issuer, key, clock):
    weak = {"kty": "oct", "kid": "hmac", "k": b64(b"secret"), "alg": "HS256"}
    p384 = ECKey.generate_key("P-384", parameters={"kid": "p384"}).as_dict(private=False)
    encryption = {**local_issuer.jwks(local_issuer.new_key("RS256"))["keys"][0], "use": "enc", "kid": "enc"}
    document = local_issuer.jwks(key)
    document["keys"] += [weak, p384, encryption, {"kty": "RSA", "kid": "broken"}]
    issuer.path.write_text(json.dumps(document))
    verifier = issuer.verifier()
    assert verifier.verify(local_issuer.sign(key, issuer.claims())).userid == "user123"
    assert set(verifier.jwks._keys) == {key.kid}


def test_error_messages_say_only_missing_invalid_or_expired():
    assert AuthError("missing").www_authenticate == 'Bearer realm="purchases"'
    for reason in ("invalid", "expired"):
        error = AuthError(reason)
        assert error.status == 401
        assert error.www_authenticate == 'Bearer realm="purchases", error="invalid_token"'
    assert {AuthError(r).message for r in ("missing", "invalid", "expired")} == {
        "A bearer token is required",
        "The bearer token is invalid",
        "The bearer token has expired",
    }


@pytest.fixture
def https_server(tmp_path, monkeypatch):
    """A JWKS over https on 127.0.0.1, with a certificate from a CA this test trusts."""
    import datetime
    import http.server
    import ipaddress
    import ssl
    import threading

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def certificate(subject, issuer_name, public_key, signing_key, *, ca):
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = certificate("test CA", "test CA", ca_key.public_key(), ca_key, ca=True)
    server_cert = certificate("127.0.0.1", "test CA", server_key.public_key(), ca_key, ca=False)
    (tmp_path / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.pem").write_bytes(
        server_cert.public_bytes(serialization.Encoding.PEM)
        + server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    routes: dict[str, tuple[int, dict, bytes]] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status, headers, body = routes.get(self.path, (404, {}, b""))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # the same routes without TLS
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (server, plain)]
    for thread in threads:
        thread.start()
    try:
        urls = {"https": f"https://127.0.0.1:{server.server_address[1]}"}
        urls["http"] = f"http://127.0.0.1:{plain.server_address[1]}"
        yield urls, routes
    finally:
        for s, thread in zip((server, plain), threads, strict=True):
            s.shutdown()
            s.server_close()
            thread.join(10)


def test_the_jwks_is_fetched_over_https_and_never_through_a_redirect_to_http(https_server, key, clock):
    urls, routes = https_server
    document = json.dumps(local_issuer.jwks(key)).encode()
    routes["/certs"] = (200, {"Content-Type": "application/json"}, document)
    routes["/moved"] = (302, {"Location": f"{urls['https']}/certs"}, b"")
    routes["/downgraded"] = (302, {"Location": f"{urls['http']}/certs"}, b"")
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user123", "exp": int(clock()) + 600}
    token = local_issuer.sign(key, claims)

    def verifier(url):
        return TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=Jwks(url, clock=clock), clock=clock)

    assert verifier(f"{urls['https']}/certs").verify(token).userid == "user123"
    assert verifier(f"{urls['https']}/moved").verify(token).userid == "user123"
    assert refused(verifier(f"{urls['https']}/downgraded"), token) == "unavailable"
    assert refused(verifier(f"{urls['https']}/missing"), token) == "unavailable"
    assert refused(verifier(f"{urls['http']}/certs"), token) == "unavailable"


def crafted_tokens(key, claims):
    """Tokens whose parts are well-formed base64 but hold the wrong things."""
    good = local_issuer.sign(key, claims)
    _, payload, signature = good.split(".")
    headers = [[], "text", 7, None, {}, {"alg": 5}, {"alg": "ES256"}, {"alg": "ES256", "kid": 5}]
    headers += [{"alg": "ES256", "kid": key.kid, "crit": ["exp"]}, {"alg": "RS512", "kid": key.kid}]
    headers += [{"alg": "ES256", "kid": key.kid, "b64": False, "crit": ["b64"]}, {"alg": "none"}]
    tokens = [f"{b64(json.dumps(h).encode())}.{payload}.{signature}" for h in headers]
    for body in ([], "x", 1, {"exp": "soon"}, {"exp": float("nan")}, {"exp": True}):
        tokens.append(local_issuer.sign(key, body) if isinstance(body, dict) else None)
        tokens.append(f"{good.split('.')[0]}.{b64(json.dumps(body).encode())}.{signature}")
    tokens += [good[:-3], good + "A", good.replace(".", "..", 1), "..", "a.b.c.d.e", good + "\x00"]
    return [t for t in tokens if t]


def test_malformed_tokens_are_invalid_never_an_error(issuer, key):
    verifier = issuer.verifier()
    for token in crafted_tokens(key, issuer.claims()):
        assert refused(verifier, token) == "invalid", token


def test_an_exp_beyond_any_float_is_handled(issuer, key):
    far = issuer.claims(exp=10**400)
    verifier = issuer.verifier()
    assert verifier.verify(local_issuer.sign(key, far)).userid == "user123"
    assert verifier.verify(local_issuer.sign(key, far)).userid == "user123"  # cached


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_text_as_a_token_is_refused_cleanly(issuer, text):
    with pytest.raises(AuthError):
        issuer.verifier().verify(text)


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("openid purchases:read-all", {"openid", "purchases:read-all"}),
        ("openid  purchases:read-all ", {"openid", "purchases:read-all"}),
        ("openid\u00a0purchases:read-all", {"openid\u00a0purchases:read-all"}),
        ("openid\tpurchases:read-all", {"openid\tpurchases:read-all"}),
        ("purchases:read-all\u2003x", {"purchases:read-all\u2003x"}),
        ("x\npurchases:read-all", {"x\npurchases:read-all"}),
    ],
    ids=["space", "spaces", "nbsp", "tab", "em-space", "newline"],
)
def test_scopes_are_split_on_the_space_character_only(issuer, key, scope, expected):
    # RFC 6749, 3.3: scope tokens are separated by %x20; no other whitespace grants read-all.
    principal = issuer.verifier().verify(local_issuer.sign(key, issuer.claims(scope=scope)))
    assert principal.scopes == frozenset(expected)
    assert principal.may_read("someone-else") == ("purchases:read-all" in expected)
