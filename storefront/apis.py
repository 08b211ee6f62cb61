"""The storefront's public API.

`POST /buy` is the hot path, so it is a plain Django view: it parses the body
itself (decimals stay exact) and does nothing per request that could be done
once per process; `storefront/schema.py` describes it in the OpenAPI document,
and browsers reach it through the docs UI. The read path is a thin DRF
pass-through to the ledger, so it browses in a browser too.
"""

import logging
from collections.abc import Callable
from decimal import Decimal
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views import View
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from purchases_project import identity, jsonutil
from purchases_project.api_docs import FORBIDDEN_READ, error, user_purchases_schema, user_spending_schema
from purchases_project.errors import json_error, json_response
from purchases_project.middleware import PRIVATE_HEADERS, private_answers
from purchases_project.paging import read_params_validate, spending_params_validate
from purchases_project.rules import (
    REQUIRED_FIELDS,
    InvalidPurchase,
    missing_fields,
    parse_idempotency_key,
    parse_price,
    parse_userid,
    parse_username,
)
from storefront import ledger_client, services
from storefront.producer import PublishError

logger = logging.getLogger(__name__)

JSON_TYPES = ("application/json",)
FORBIDDEN_BUY = "A purchase may only be recorded for the authenticated customer's own userid"
NUMBER_OUT_OF_RANGE = "Request body holds a number too large or too small to represent"


def _is_json(content_type: str) -> bool:
    return content_type in JSON_TYPES or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


def _body(request: HttpRequest, limit: int) -> bytes:
    """Up to `limit` + 1 bytes of the body, sent with a Content-Length or chunked."""
    if request.META.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        # No Content-Length, so Django sees an empty body: the server decodes the chunks.
        return request.META["wsgi.input"].read(limit + 1)
    return request.read(limit + 1)


def purchase_parse(data: dict, *, idempotency_key: str | None) -> tuple[str, str, Decimal]:
    """(username, userid, price) of a purchase under the rules, checked in /buy's order;
    InvalidPurchase carries the text /buy answers with (the customer page shows the same)."""
    if missing := missing_fields(data):
        raise InvalidPurchase(f"Missing required fields: {missing}")
    parse_idempotency_key(idempotency_key)
    price = parse_price(data["price"])
    username = parse_username(data["username"])
    userid = parse_userid(data["userid"])
    # Fields beyond the purchase's are ignored, but not a number no decimal holds: refused
    # as it would be in the price. A plain purchase has no other fields to look through.
    if len(data) > len(REQUIRED_FIELDS) and jsonutil.holds_unrepresentable(data):
        raise InvalidPurchase(NUMBER_OUT_OF_RANGE)
    return username, userid, price


class PurchaseCreateApi(View):
    http_method_names = ["post", "options"]

    def post(self, request: HttpRequest) -> HttpResponse:
        # The token first, then the request itself, then ownership: a bad body gets the
        # same 400 whoever sends it.
        try:
            principal = identity.authenticate(request)
        except identity.AuthError as exc:
            return identity.error_response(exc)
        limit = settings.PURCHASE_MAX_BODY_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            return json_error(f"Request body must be at most {limit} bytes", 413)
        if not _is_json(request.content_type or ""):
            return json_error("Content-Type must be application/json", 415)
        body = _body(request, limit)
        if len(body) > limit:
            return json_error(f"Request body must be at most {limit} bytes", 413)
        try:
            data = jsonutil.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return json_error("Request body must be a JSON object", 400)

        key = request.headers.get("Idempotency-Key")
        try:
            username, userid, price = purchase_parse(data, idempotency_key=key)
        except InvalidPurchase as exc:
            return json_error(str(exc), 400)
        if userid != principal.userid:
            return json_error(FORBIDDEN_BUY, 403)

        try:
            event = services.purchase_publish(
                username=username, userid=userid, price=price, idempotency_key=key
            )
        except PublishError as exc:
            logger.warning("purchase not published: %s", exc, extra={"userid": userid})
            return json_error("Purchase could not be recorded: the broker is unavailable", 503)
        return json_response(
            {"status": "success", "message": "Purchase recorded", "data": event.as_response()},
            status=201,
            headers=PRIVATE_HEADERS,
        )


LEDGER_UNAVAILABLE = "The ledger (or its database) is unavailable"
LEDGER_TOO_SLOW = error("The ledger did not answer in time")


def _ledger_answer(fetch: Callable[..., tuple[int, dict]], **call) -> tuple[int, dict]:
    """The ledger's (status, body), or the storefront's own when the ledger fails to answer."""
    try:
        return fetch(**call)
    except ledger_client.LedgerTimeout:
        return 504, {"error": "The ledger did not answer in time"}
    except ledger_client.LedgerUnavailable:
        return 503, {"error": "The ledger is unavailable"}


@private_answers
class UserPurchaseListApi(APIView):
    """One page of a user's purchases, from the ledger; `next` points back at the storefront."""

    authentication_classes = identity.SESSION_OR_BEARER

    @user_purchases_schema(unavailable=LEDGER_UNAVAILABLE, status_504=LEDGER_TOO_SLOW)
    def get(self, request: Request, userid: str) -> Response:
        read_params_validate(userid=userid, query_params=request.query_params)
        principal = identity.principal(request)
        if not principal.may_read(userid):
            return Response({"error": FORBIDDEN_READ}, status=403)
        status, body = _ledger_answer(
            ledger_client.user_purchases_fetch,
            userid=userid,
            params={k: v for k, v in request.query_params.dict().items() if k != "format"},
            token=principal.token,
        )
        if body.get("next"):
            query = urlsplit(body["next"]).query
            page = f"{request.path}?{query}"
            # On the public origin when one is configured, never on whatever Host was sent.
            public = settings.PUBLIC_BASE_URL
            body["next"] = f"{public}{page}" if public else request.build_absolute_uri(page)
        return Response(body, status=status)


@private_answers
class UserSpendingApi(APIView):
    """A user's spending per month, from the ledger."""

    authentication_classes = identity.SESSION_OR_BEARER

    @user_spending_schema(unavailable=LEDGER_UNAVAILABLE, status_504=LEDGER_TOO_SLOW)
    def get(self, request: Request, userid: str) -> Response:
        spending_params_validate(userid=userid, query_params=request.query_params)
        principal = identity.principal(request)
        if not principal.may_read(userid):
            return Response({"error": FORBIDDEN_READ}, status=403)
        status, body = _ledger_answer(
            ledger_client.user_spending_fetch,
            userid=userid,
            params={k: v for k, v in request.query_params.dict().items() if k in ("since", "until")},
            token=principal.token,
        )
        return Response(body, status=status)


class HealthApi(APIView):
    @extend_schema(
        responses={200: inline_serializer("StorefrontHealth", {"status": serializers.CharField()})}
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "healthy"})
