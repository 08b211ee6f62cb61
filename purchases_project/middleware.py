"""Middleware shared by both web roles."""

from csp.middleware import CSPMiddleware
from rest_framework.response import Response

from purchases_project import request_id
from purchases_project.errors import json_error, reason


class RequestIdMiddleware:
    """Takes `X-Request-ID` from the client or makes one, and returns it on the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        rid = request_id.request_id_from(request.headers.get(request_id.HEADER))
        request.request_id = rid
        token = request_id.set(rid)
        try:
            response = self.get_response(request)
        finally:
            request_id.reset(token)
        response[request_id.HEADER] = rid
        return response


class JsonErrorMiddleware:
    """Turns Django's own non-JSON error pages (404, 405, 400 ...) into `{"error": ...}`."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code < 400
            or response.get("Content-Type", "").startswith("application/json")
            # DRF's responses are already JSON, or its browsable page for a person.
            or isinstance(response, Response)
        ):
            return response
        replacement = json_error(reason(response.status_code), response.status_code)
        if response.has_header("Allow"):
            replacement["Allow"] = response["Allow"]
        return replacement


class HtmlContentSecurityPolicy(CSPMiddleware):
    """django-csp's Content-Security-Policy on the HTML pages (the browsable API, the docs UI)
    only: a JSON answer runs nothing in a browser, and /buy pays nothing for the header."""

    def process_request(self, request):
        return None  # no nonces: the pages run only scripts served from the app itself

    def process_response(self, request, response):
        if not response.get("Content-Type", "").startswith("text/html"):
            return response
        return super().process_response(request, response)
