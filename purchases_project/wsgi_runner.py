"""How each granian worker calls the WSGI application: granian's own wrapper
(`granian.wsgi._callback_wrapper`, 2.8) made leaner for this project, installed by
`purchases_project.serve` in each worker before it serves.

- The environ holds the WSGI keys and the request's own, not also a copy of the whole
  process environment for every request (Django would walk it again for the headers).
- A response whose body is already in memory (Django's `HttpResponse`, JSON answers
  included) goes to granian in one call and is then closed (Django's `request_finished`),
  instead of through the iterator protocol; streaming responses (static files) still
  stream.

The access log stays granian's (its wrapper is used unchanged when one is configured).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from django.http import HttpResponse
from granian.wsgi import Response, ResponseIterWrap
from granian.wsgi import _callback_wrapper as granian_callback_wrapper


def callback_wrapper(callback: Callable[..., Any], scope_opts: dict[str, Any], access_log_fmt=None):
    if access_log_fmt:
        return granian_callback_wrapper(callback, scope_opts, access_log_fmt)
    prefix = scope_opts.get("url_path_prefix") or ""
    basic_env: dict[str, Any] = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SCRIPT_NAME": prefix,
        "SERVER_SOFTWARE": "Granian",
        "wsgi.errors": sys.stderr,
        "wsgi.input_terminated": True,
        "wsgi.multiprocess": False,
        "wsgi.multithread": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }

    def runner(proto, scope):
        resp = Response()
        environ = basic_env | scope
        if prefix:
            environ["PATH_INFO"] = scope["PATH_INFO"][len(prefix) :] or "/"
        rv = callback(environ, resp)
        if isinstance(rv, list):
            proto.response_bytes(resp.status, resp.headers, b"".join(rv))
        elif isinstance(rv, HttpResponse):
            try:
                proto.response_bytes(resp.status, resp.headers, rv.content)
            finally:
                rv.close()
        else:
            proto.response_iter(resp.status, resp.headers, ResponseIterWrap(rv))
        return resp.status

    return runner
