"""Middleware shared by both web roles, and the headers of answers that carry purchases."""

from csp.middleware import CSPMiddleware
from django.utils.decorators import method_decorator
from django.views.decorators.cache import cache_control
from django.views.decorators.vary import vary_on_headers
from django_prometheus.middleware import PrometheusAfterMiddleware
from rest_framework.response import Response

from purchases_project import request_id
from purchases_project.errors import json_error, reason

# Purchases and spending are one customer's: no cache keeps them (browser back-forward included),
# and a shared cache never answers one customer with another's (they differ by token or session).
PRIVATE_HEADERS = {"Cache-Control": "no-store", "Vary": "Authorization, Cookie"}


def private_answers(view_class):
    """Class decorator for a view whose answers (JSON, HTML, errors) carry a customer's data:
    `Cache-Control: no-store` and `Vary` naming `Authorization` and `Cookie`."""
    decorators = [vary_on_headers("Authorization", "Cookie"), cache_control(no_store=True)]
    return method_decorator(decorators, name="dispatch")(view_class)


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


class PrometheusLabelsMiddleware(PrometheusAfterMiddleware):
    """django-prometheus's after-middleware with no label a client chooses.

    Its `method` labels take the request's method as sent in one place (latency by view and
    method), so random methods made new series without end; here every method outside the
    standard ones is `other`. Views are labelled by the route's name (never the path), the
    other labels (status, charset, template, transport, exception type) by the server.
    `label_metric` is django-prometheus's hook for exactly this."""

    STANDARD_METHODS = frozenset(
        ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT")
    )

    def label_metric(self, metric, request, response=None, **labels):
        if not labels:
            return metric
        method = labels.get("method")
        if method is not None and method not in self.STANDARD_METHODS:
            labels["method"] = "other"
        return metric.labels(**labels)
