"""schemathesis hooks for the fuzz test: every request carries a bearer token of the
stack's issuer for the customer it is about (the body's or the path's userid), so
valid requests reach the rules behind the token check instead of stopping at a 401.

Loaded by the schemathesis CLI through SCHEMATHESIS_HOOKS; FUZZ_ISSUER_DIR names the
issuer's folder and FUZZ_ISSUER its URL (the `iss` the services expect).
"""

import ast
import os
import threading

import schemathesis

from purchases_project.local_issuer import LocalIssuer

_issuer = LocalIssuer(os.environ["FUZZ_ISSUER_DIR"], issuer=os.environ["FUZZ_ISSUER"])

# CPython 3.11 keeps ast.parse's recursion counter per interpreter, so two threads parsing at
# once fail with "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905).
# The CLI's workers do that when hypothesis describes the coverage phase's filters of two
# operations with string patterns at once: one parse at a time in this process.
_parse, _parse_lock = ast.parse, threading.Lock()


def _one_parse_at_a_time(*args, **kwargs):
    with _parse_lock:
        return _parse(*args, **kwargs)


ast.parse = _one_parse_at_a_time


def customer_of(case) -> str:
    body = case.body if isinstance(case.body, dict) else {}
    userid = body.get("userid", case.path_parameters.get("userid"))
    return userid if isinstance(userid, str) and userid else "fuzz"


@schemathesis.hook
def before_call(context, case, kwargs):
    case.headers["Authorization"] = f"Bearer {_issuer.token(customer_of(case))}"
