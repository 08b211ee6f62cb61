"""Each service's OpenAPI document: valid OpenAPI 3, its own operations only, every answer described."""

import pytest
from django.test import Client
from openapi_spec_validator import validate


def schema(urlconf: str, settings) -> dict:
    settings.ROOT_URLCONF = urlconf
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_storefront_schema_is_valid_and_describes_buy(settings):
    document = schema("storefront.urls", settings)
    validate(document)
    assert set(document["paths"]) == {"/buy", "/getAllUserBuys/{userid}", "/getSpending/{userid}", "/health"}
    buy = document["paths"]["/buy"]["post"]
    assert set(buy["responses"]) == {"201", "400", "401", "403", "413", "415", "503"}
    assert buy["security"] == [{"bearerAuth": []}]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert [p["name"] for p in buy["parameters"]] == ["Idempotency-Key", "X-Request-ID"]
    listing = document["paths"]["/getAllUserBuys/{userid}"]["get"]
    assert set(listing["responses"]) == {"200", "400", "401", "403", "404", "503", "504"}
    assert listing["security"] == [{"bearerAuth": []}]
    assert {p["name"] for p in listing["parameters"]} >= {
        "limit",
        "cursor",
        "since",
        "until",
        "order",
        "userid",
    }
    order = next(p for p in listing["parameters"] if p["name"] == "order")
    assert order["schema"] == {"type": "string", "enum": ["asc", "desc"], "default": "asc"}
    spending = document["paths"]["/getSpending/{userid}"]["get"]
    assert set(spending["responses"]) == {"200", "400", "401", "403", "404", "503", "504"}
    assert spending["security"] == [{"bearerAuth": []}]
    assert {p["name"] for p in spending["parameters"]} >= {"since", "until", "userid"}


def test_ledger_schema_is_valid_and_has_no_storefront_operations(settings):
    document = schema("ledger.urls", settings)
    validate(document)
    assert set(document["paths"]) == {"/purchases/{userid}", "/spending/{userid}", "/health"}
    for path in ("/purchases/{userid}", "/spending/{userid}"):
        reads = document["paths"][path]["get"]
        assert set(reads["responses"]) == {"200", "400", "401", "403", "404", "503"}, path
    assert set(document["paths"]["/health"]["get"]["responses"]) == {"200", "503"}


@pytest.mark.parametrize("urlconf", ["storefront.urls", "ledger.urls"])
def test_docs_ui_is_served_locally(urlconf, settings):
    settings.ROOT_URLCONF = urlconf
    page = Client().get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "swagger-ui" in html and '<script src="/api/docs/?script=">' in html
    assert "cdn" not in html.lower()
    script = Client().get("/api/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in script.content.decode()


def test_storefront_has_one_error_component(settings):
    components = schema("storefront.urls", settings)["components"]["schemas"]
    assert [name for name in components if "Error" in name] == ["Error"]
