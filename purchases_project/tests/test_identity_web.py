"""Bearer tokens in views, the settings a web process needs, and the local issuer."""

import json
import os
import re
import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import RequestFactory
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from devstack.stack import Stack
from purchases_project import identity, local_issuer
from purchases_project.identity.tokens import Jwks, TokenVerifier
from purchases_project.local_issuer import LocalIssuer
from tests.support.processes import run_python

CHALLENGE = 'Bearer realm="purchases"'
INVALID_CHALLENGE = 'Bearer realm="purchases", error="invalid_token"'


@pytest.fixture
def issuer(tmp_path):
    return LocalIssuer(tmp_path / "issuer").ensure()


@pytest.fixture
def auth_settings(settings, issuer):
    for name, value in issuer.env().items():
        setattr(settings, name, value)
    return settings


class OwnPurchases(APIView):
    authentication_classes = [identity.BearerTokenAuthentication]

    def get(self, request, userid):
        if not request.user.may_read(userid):
            return Response({"error": "forbidden"}, status=403)
        return Response({"userid": request.user.userid, "forwarded": request.auth == request.user.token})


def drf_get(userid: str, authorization: str | None = None):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    response = OwnPurchases.as_view()(APIRequestFactory().get(f"/p/{userid}", **headers), userid=userid)
    response.render()
    return response


def plain_request(authorization: str | None = None):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    return RequestFactory().post("/buy", data=b"{}", content_type="application/json", **headers)


MALFORMED = [None, "", "Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token abc", "Bearer a b", "Bearer ä"]


@pytest.mark.parametrize("authorization", MALFORMED)
def test_plain_view_without_a_usable_header_is_401_missing(auth_settings, authorization):
    with pytest.raises(identity.AuthError) as info:
        identity.authenticate(plain_request(authorization))
    response = identity.error_response(info.value)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == CHALLENGE
    assert json.loads(response.content) == {"error": "A bearer token is required"}


def test_plain_view_with_a_bad_token_is_401_invalid_token(auth_settings):
    other = local_issuer.sign(local_issuer.new_key(), local_issuer.claims_for("user123"))
    with pytest.raises(identity.AuthError) as info:
        identity.authenticate(plain_request(f"Bearer {other}"))
    response = identity.error_response(info.value)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == INVALID_CHALLENGE
    assert json.loads(response.content) == {"error": "The bearer token is invalid"}


def test_plain_view_with_a_good_token_gets_the_principal(auth_settings, issuer):
    token = issuer.token("user123", scope="openid purchases:read-all")
    principal = identity.authenticate(plain_request(f"bearer {token}"))
    assert principal.userid == "user123"
    assert principal.scopes == {"openid", "purchases:read-all"}
    assert principal.token == token


@pytest.mark.parametrize("authorization", [None, "Basic abc", "Bearer"])
def test_drf_view_without_a_usable_header_is_401_with_the_challenge(auth_settings, authorization):
    response = drf_get("user123", authorization)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == CHALLENGE
    assert json.loads(response.content) == {"error": "A bearer token is required"}


def test_drf_view_with_an_expired_token_is_401_expired(auth_settings, issuer):
    claims = local_issuer.claims_for("user123")
    claims["exp"] = int(time.time()) - 120
    response = drf_get("user123", f"Bearer {local_issuer.sign(issuer.key(), claims)}")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == INVALID_CHALLENGE
    assert json.loads(response.content) == {"error": "The bearer token has expired"}


def test_drf_view_with_a_good_token_sees_the_principal_and_the_token(auth_settings, issuer):
    response = drf_get("user123", f"Bearer {issuer.token('user123')}")
    assert response.status_code == 200
    assert json.loads(response.content) == {"userid": "user123", "forwarded": True}
    assert drf_get("user456", f"Bearer {issuer.token('user123')}").status_code == 403
    support = issuer.token("support1", scope="purchases:read-all")
    assert drf_get("user456", f"Bearer {support}").status_code == 200


def test_drf_view_answers_503_when_the_issuer_keys_are_unavailable(auth_settings, issuer):
    token = issuer.token("user123")
    issuer.jwks_path.unlink()
    response = drf_get("user123", f"Bearer {token}")
    assert response.status_code == 503
    assert "WWW-Authenticate" not in response
    assert json.loads(response.content)["error"].startswith("Tokens cannot be verified now")


def test_changed_settings_make_a_new_verifier(auth_settings, issuer, tmp_path):
    first = identity.verifier()
    auth_settings.AUTH_AUDIENCE = "another"
    assert identity.verifier() is not first
    assert identity.verifier().audience == "another"
    second = identity.verifier()
    identity.reset()
    assert identity.verifier() is not second


def test_drf_views_document_a_bearer_security_scheme(auth_settings):
    from django.urls import path
    from drf_spectacular.generators import SchemaGenerator

    class Urls:
        urlpatterns = [path("p/<str:userid>", OwnPurchases.as_view())]

    schema = SchemaGenerator(urlconf=Urls).get_schema(request=None, public=True)
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert schema["paths"]["/p/{userid}"]["get"]["security"] == [{"bearerAuth": []}]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"AUTH_ISSUER": ""}, "AUTH_ISSUER"),
        ({"AUTH_JWKS_URL": ""}, "AUTH_JWKS_URL"),
        ({"AUTH_JWKS_URL": "http://id.example.test/certs"}, "https:// URL or file:///path/jwks.json"),
        ({"AUTH_JWKS_URL": "jwks.json"}, "https:// URL or file:///path/jwks.json"),
        ({"AUTH_AUDIENCE": ""}, "AUTH_AUDIENCE"),
    ],
)
def test_check_settings_names_what_is_missing(auth_settings, overrides, expected):
    identity.check_settings()
    for name, value in overrides.items():
        setattr(auth_settings, name, value)
    with pytest.raises(ImproperlyConfigured, match=re.escape(expected)):
        identity.check_settings()


def test_a_web_process_without_an_issuer_refuses_to_start():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")}
    env.update(
        SERVICE_ROLE="storefront", DJANGO_SECRET_KEY="x", DJANGO_SETTINGS_MODULE="purchases_project.settings"
    )
    result = run_python("-m", "purchases_project.serve", env=env)
    assert result.returncode != 0
    assert "AUTH_ISSUER" in result.stderr and "AUTH_JWKS_URL" in result.stderr
    assert "Listening at" not in result.stderr + result.stdout


def test_issue_token_refuses_without_the_local_key(tmp_path):
    with pytest.raises(CommandError, match="no local signing key"):
        call_command("issue_token", "user123", issuer_dir=str(tmp_path / "nothing"))
    result = run_python("manage.py", "issue_token", "user123", "--issuer-dir", str(tmp_path / "nothing"))
    assert result.returncode != 0
    assert "no local signing key" in result.stderr
    assert not (tmp_path / "nothing").exists()


def test_issue_token_prints_a_token_the_services_accept(issuer, capsys):
    call_command(
        "issue_token",
        "user123",
        "--scope",
        "purchases:read-all",
        "--ttl",
        "2h",
        issuer_dir=str(issuer.directory),
    )
    token = capsys.readouterr().out.strip()
    verifier = TokenVerifier(issuer=local_issuer.ISSUER, audience="purchases", jwks=Jwks(issuer.jwks_url))
    principal = verifier.verify(token)
    assert principal.userid == "user123"
    assert principal.may_read("someone-else")
    claims = json.loads(local_issuer.jws.extract_compact(token.encode()).payload)
    assert claims["exp"] - claims["iat"] == 7200


@pytest.mark.parametrize("ttl", ["0", "-5", "1y", "h"])
def test_issue_token_refuses_a_bad_ttl(issuer, ttl):
    with pytest.raises(CommandError, match="--ttl"):
        call_command("issue_token", "user123", "--ttl", ttl, issuer_dir=str(issuer.directory))


def test_the_local_issuer_keeps_its_key_private_and_stable(tmp_path):
    first = LocalIssuer(tmp_path / "i").ensure()
    assert oct(first.key_path.stat().st_mode & 0o777) == "0o600"
    kid = first.key().kid
    again = LocalIssuer(tmp_path / "i").ensure()
    assert again.key().kid == kid
    first.jwks_path.write_text('{"keys": []}')
    LocalIssuer(tmp_path / "i").ensure()
    assert json.loads(first.jwks_path.read_text()) == local_issuer.jwks(first.key())


def test_every_process_of_a_stack_gets_the_stacks_issuer(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTH_USERID_CLAIM", "email")
    stack = Stack(tmp_path / "stack")
    env = stack.env()
    assert env["AUTH_ISSUER"] == local_issuer.ISSUER
    assert env["AUTH_AUDIENCE"] == "purchases"
    assert env["AUTH_JWKS_URL"] == (tmp_path / "stack" / "issuer" / "jwks.json").as_uri()
    assert "AUTH_USERID_CLAIM" not in env
    verifier = TokenVerifier(issuer=env["AUTH_ISSUER"], audience="purchases", jwks=Jwks(env["AUTH_JWKS_URL"]))
    assert verifier.verify(stack.issuer.token("user123")).userid == "user123"
