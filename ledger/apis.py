"""The ledger's internal API (Django REST framework, so it browses in a browser too)."""

import logging

from drf_spectacular.utils import extend_schema, inline_serializer
from pymongo.errors import PyMongoError
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ledger import db, selectors
from purchases_project import identity
from purchases_project.api_docs import FORBIDDEN_READ, user_purchases_schema, user_spending_schema
from purchases_project.middleware import private_answers
from purchases_project.paging import read_params_validate, spending_params_validate

logger = logging.getLogger(__name__)


def database_unavailable(exc: Exception) -> Response:
    logger.warning("database unavailable: %s", exc)
    return Response({"error": "The database is unavailable"}, status=503)


@private_answers
class UserPurchaseListApi(APIView):
    """One page of a user's purchases, oldest (or newest) first, with the user's all-time count and total.

    The storefront forwards the customer's token; the ledger verifies it with the same rules.
    """

    authentication_classes = identity.SESSION_OR_BEARER

    @user_purchases_schema(unavailable="MongoDB is unavailable")
    def get(self, request: Request, userid: str) -> Response:
        page_args = read_params_validate(userid=userid, query_params=request.query_params)
        if not identity.principal(request).may_read(userid):
            return Response({"error": FORBIDDEN_READ}, status=403)
        cursor = page_args.get("cursor")
        try:
            count, total = selectors.user_summary_get(userid=userid)
            page = selectors.user_purchases_page(
                userid=userid,
                limit=page_args["limit"],
                after=(cursor.timestamp, cursor.purchase_id) if cursor else None,
                since=page_args.get("since"),
                until=page_args.get("until"),
                order=page_args["order"],
            )
        except PyMongoError as exc:
            return database_unavailable(exc)
        next_url = None
        if page.next_cursor:
            query = request.query_params.copy()
            query["cursor"] = page.next_cursor
            if "order" in query:
                query["order"] = page_args["order"]  # the cursor's, which it keeps
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


@private_answers
class UserSpendingApi(APIView):
    """A user's spending per month (UTC), oldest first, from the per-month totals the consumer keeps."""

    authentication_classes = identity.SESSION_OR_BEARER

    @user_spending_schema(unavailable="MongoDB is unavailable")
    def get(self, request: Request, userid: str) -> Response:
        window = spending_params_validate(userid=userid, query_params=request.query_params)
        if not identity.principal(request).may_read(userid):
            return Response({"error": FORBIDDEN_READ}, status=403)
        try:
            spending = selectors.user_spending_get(
                userid=userid, since=window.get("since"), until=window.get("until")
            )
        except PyMongoError as exc:
            return database_unavailable(exc)
        return Response(
            {
                "userid": userid,
                "months": spending.months,
                "count": spending.count,
                "total_spent": spending.total,
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
