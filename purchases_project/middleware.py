"""Middleware shared by both web roles."""

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
        if response.status_code >= 400 and not response.get("Content-Type", "").startswith(
            "application/json"
        ):
            if request.accepts("text/html") and "text/html" in response.get("Content-Type", ""):
                # DRF's browsable pages render their own errors for people.
                if getattr(response, "renderer_context", None) is not None:
                    return response
            replacement = json_error(reason(response.status_code), response.status_code)
            if response.has_header("Allow"):
                replacement["Allow"] = response["Allow"]
            return replacement
        return response
