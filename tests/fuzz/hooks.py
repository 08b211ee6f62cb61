"""schemathesis hooks for the fuzz test: every request carries a bearer token of the
stack's issuer for the customer it is about (the body's or the path's userid), so
valid requests reach the rules behind the token check instead of stopping at a 401.

Loaded by the schemathesis CLI through SCHEMATHESIS_HOOKS; FUZZ_ISSUER_DIR names the
issuer's folder and FUZZ_ISSUER its URL (the `iss` the services expect).
"""

import os

import schemathesis

from purchases_project.local_issuer import LocalIssuer

_issuer = LocalIssuer(os.environ["FUZZ_ISSUER_DIR"], issuer=os.environ["FUZZ_ISSUER"])


def customer_of(case) -> str:
    body = case.body if isinstance(case.body, dict) else {}
    userid = body.get("userid", case.path_parameters.get("userid"))
    return userid if isinstance(userid, str) and userid else "fuzz"


@schemathesis.hook
def before_call(context, case, kwargs):
    case.headers["Authorization"] = f"Bearer {_issuer.token(customer_of(case))}"
