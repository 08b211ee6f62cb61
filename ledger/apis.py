"""The ledger's internal API (Django REST framework, so it browses in a browser too)."""

import logging

from drf_spectacular.utils import extend_schema, inline_serializer
from pymongo.errors import PyMongoError
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ledger import db, selectors
from purchases_project.api_docs import PageQuery, user_purchases_schema
from purchases_project.events import format_timestamp, parse_timestamp

logger = logging.getLogger(__name__)


class PageParams(PageQuery):
    """The documented page parameters, checked: a bad one is a 400."""

    since = serializers.CharField(required=False, help_text="ISO 8601, inclusive")
    until = serializers.CharField(required=False, help_text="ISO 8601, exclusive")

    def validate_cursor(self, value: str) -> str:
        try:
            selectors.cursor_decode(value)
        except selectors.InvalidCursor as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value

    def _moment(self, value: str) -> str:
        try:
            return format_timestamp(parse_timestamp(value))
        except ValueError:
            raise serializers.ValidationError("must be an ISO 8601 date or time") from None

    validate_since = _moment
    validate_until = _moment


def database_unavailable(exc: Exception) -> Response:
    logger.warning("database unavailable: %s", exc)
    return Response({"error": "The database is unavailable"}, status=503)


class UserPurchaseListApi(APIView):
    """One page of a user's purchases, oldest first, with the user's all-time count and total."""

    @user_purchases_schema(unavailable="MongoDB is unavailable")
    def get(self, request: Request, userid: str) -> Response:
        params = PageParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        page_args = params.validated_data
        try:
            count, total = selectors.user_summary_get(userid=userid)
            page = selectors.user_purchases_page(
                userid=userid,
                limit=page_args["limit"],
                cursor=page_args.get("cursor"),
                since=page_args.get("since"),
                until=page_args.get("until"),
            )
        except selectors.InvalidCursor as exc:
            raise ValidationError({"cursor": [str(exc)]}) from None
        except PyMongoError as exc:
            return database_unavailable(exc)
        next_url = None
        if page.next_cursor:
            query = request.query_params.copy()
            query["cursor"] = page.next_cursor
            next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        # The page is already in the output's shape; a serializer pass over up to
        # 1,000 rows would only cost time (UserPurchasesOutput documents it).
        return Response(
            {
                "userid": userid,
                "purchases": page.purchases,
                "count": count,
                "total_spent": total,
                "next": next_url,
            }
        )


class HealthApi(APIView):
    @extend_schema(
        responses={
            200: inline_serializer(
                "LedgerHealth", {"status": serializers.CharField(), "mongodb": serializers.CharField()}
            ),
            503: inline_serializer(
                "LedgerUnhealthy",
                {
                    "status": serializers.CharField(),
                    "mongodb": serializers.CharField(),
                    "error": serializers.CharField(),
                },
            ),
        }
    )
    def get(self, request: Request) -> Response:
        try:
            db.ping()
        except PyMongoError as exc:
            logger.warning("health: database unavailable: %s", exc)
            return Response(
                {"status": "unhealthy", "mongodb": "disconnected", "error": "MongoDB does not answer"},
                status=503,
            )
        return Response({"status": "healthy", "mongodb": "connected"})
