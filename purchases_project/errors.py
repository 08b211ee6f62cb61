"""Every error either service answers is JSON with an `error` string."""

import logging
from http import HTTPStatus

from django.core.exceptions import DisallowedHost
from django.http import HttpResponse
from rest_framework import exceptions
from rest_framework.views import exception_handler

from purchases_project import jsonutil

logger = logging.getLogger(__name__)


def json_response(data, status: int = 200, headers: dict | None = None) -> HttpResponse:
    return HttpResponse(jsonutil.dumps(data), status=status, content_type="application/json", headers=headers)


def json_error(message: str, status: int, **extra) -> HttpResponse:
    return json_response({"error": message, **extra}, status=status)


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def handler400(request, exception=None):
    """Requests Django refuses before any view: a disallowed Host header, a malformed body."""
    if isinstance(exception, DisallowedHost):
        return json_error("The Host header names no host this service answers to", 400)
    return json_error("Bad request", 400)


def handler404(request, exception=None):
    return json_error("Not found", 404)


def handler500(request):
    return json_error("Internal server error", 500)


def drf_exception_handler(exc, context):
    """DRF's handler, reshaped from `{"detail": ...}` to the contract's `{"error": ...}`."""
    response = exception_handler(exc, context)
    if response is None:
        logger.exception("unhandled error in %s", context.get("view").__class__.__name__)
        return None
    data = response.data
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"error": _first_message(data), "details": data}
    elif isinstance(data, dict) and "detail" in data:
        response.data = {"error": str(data["detail"])}
    return response


def _first_message(data) -> str:
    """The first validation message, prefixed with its field name."""
    if isinstance(data, dict):
        for field, value in data.items():
            message = _first_message(value)
            return message if field == "non_field_errors" else f"{field}: {message}"
    if isinstance(data, list) and data:
        return _first_message(data[0])
    return str(data)
