"""What both services' OpenAPI documents share: the page and error shapes, and the
schema and docs URLs. The storefront and the ledger answer reads in one shape, so
they describe it with the same serializers; the parameters are described from the
rules that check them (`purchases_project.paging`, `purchases_project.rules`)."""

from django.urls import path
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import serializers

from purchases_project.paging import PageParams, SpendingParams
from purchases_project.rules import USERID_SCHEMA


class Error(serializers.Serializer):
    """Every error either service answers (the component "Error")."""

    error = serializers.CharField()


class PurchaseOutput(serializers.Serializer):
    purchase_id = serializers.UUIDField()
    username = serializers.CharField()
    userid = serializers.CharField()
    price = serializers.DecimalField(max_digits=12, decimal_places=2, coerce_to_string=False)
    timestamp = serializers.DateTimeField(help_text="UTC, microseconds, Z")


class UserPurchasesOutput(serializers.Serializer):
    userid = serializers.CharField()
    purchases = PurchaseOutput(many=True, help_text="One page, oldest first")
    count = serializers.IntegerField(help_text="All of the user's purchases, whatever the page")
    total_spent = serializers.DecimalField(
        max_digits=20, decimal_places=2, coerce_to_string=False, help_text="All-time, exact"
    )
    next = serializers.URLField(allow_null=True, help_text="The next page, or null on the last")


class MonthOutput(serializers.Serializer):
    month = serializers.CharField(help_text="YYYY-MM, UTC")
    count = serializers.IntegerField(min_value=1)
    total = serializers.DecimalField(max_digits=20, decimal_places=2, coerce_to_string=False)


class UserSpendingOutput(serializers.Serializer):
    userid = serializers.CharField()
    months = MonthOutput(many=True, help_text="Months with purchases, oldest first, within since/until")
    count = serializers.IntegerField(help_text="All of the user's purchases, whatever since/until")
    total_spent = serializers.DecimalField(
        max_digits=20, decimal_places=2, coerce_to_string=False, help_text="All-time, exact"
    )


def error(description: str) -> OpenApiResponse:
    return OpenApiResponse(Error, description=description)


REQUEST_ID = OpenApiParameter(
    "X-Request-ID", str, OpenApiParameter.HEADER, description="Echoed back; made when absent"
)
USERID = OpenApiParameter("userid", USERID_SCHEMA, OpenApiParameter.PATH, description="The user's id")


FORBIDDEN_READ = "Only your own purchases, or any user's with the purchases:read-all scope"
UNAUTHORIZED = "No bearer token, or one that fails verification (see WWW-Authenticate)"


def user_purchases_schema(*, unavailable: str, **more: OpenApiResponse):
    """The read endpoint's documentation, the same on both services but for its failures."""
    return _read_schema(PageParams, UserPurchasesOutput, unavailable, more)


def user_spending_schema(*, unavailable: str, **more: OpenApiResponse):
    """The spending endpoint's documentation, the same on both services but for its failures."""
    return _read_schema(SpendingParams, UserSpendingOutput, unavailable, more)


def _read_schema(params, output, unavailable: str, more: dict[str, OpenApiResponse]):
    return extend_schema(
        parameters=[params, USERID, REQUEST_ID],
        responses={
            200: output,
            400: error("Bad parameters"),
            401: error(UNAUTHORIZED),
            403: error(FORBIDDEN_READ),
            404: error("No such path"),
            503: error(unavailable),
            **{int(status.removeprefix("status_")): response for status, response in more.items()},
        },
    )


def docs_urlpatterns(*, title: str, description: str, hooks: tuple[str, ...] = ()) -> list:
    """`api/schema/` (OpenAPI 3) and `api/docs/` (Swagger UI, served locally) for one service."""
    custom: dict[str, str | list[str]] = {"TITLE": title, "DESCRIPTION": description}
    if hooks:
        custom["POSTPROCESSING_HOOKS"] = ["drf_spectacular.hooks.postprocess_schema_enums", *hooks]
    return [
        path("api/schema/", SpectacularAPIView.as_view(custom_settings=custom), name="schema"),
        # The split view serves its start-up script from the app, so the page needs no inline script.
        path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    ]
