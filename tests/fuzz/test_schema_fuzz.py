"""Schema-driven fuzzing of both running services (schemathesis, against the shared stack).

Each service's live OpenAPI document (`/api/schema/`) drives schemathesis' CLI:
examples, coverage (boundary values) and fuzzing (positive and negative data),
bounded per operation. Every response must be: no 5xx, a documented status code,
a documented content type, a body that matches the documented schema, and the
documented headers; and valid requests must be accepted, invalid ones refused, so
the rules and the schema built from them cannot drift apart. The contract says the
schema documents every response a client can get, so anything found here is a bug
in the app or in its schema: the test fails and prints what was found with a `curl`
to reproduce it.

POST /buy cases publish real purchases of random users to the shared stack's
broker; the examples are bounded, so that stays small. Each request carries a
bearer token for the customer it names (hooks.py).

Reproduce a failing run with FUZZ_SEED=<the seed printed>; FUZZ_MAX_EXAMPLES
changes the bound (default 50 per operation).
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.stack import ROOT

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
        # The schema and the code agree on what is valid: data the schema admits is accepted
        # (2xx), data it does not is refused (4xx).
        "positive_data_acceptance",
        "negative_data_rejection",
    ]
)
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "50"))
RUN_TIMEOUT = 150  # seconds per service; a bounded run takes well under a minute


def _findings(output: str) -> str:
    """The FAILURES section (each with its curl) and the summary, without the progress lines."""
    start = output.find(" FAILURES ")
    start = output.rfind("\n", 0, start) + 1 if start >= 0 else 0
    return output[start:].strip()


@pytest.mark.parametrize("service", ["storefront", "ledger"])
def test_live_schema_fuzzing_finds_nothing(stack, service, artifacts, tmp_path):
    assert SCHEMATHESIS.exists(), f"{SCHEMATHESIS} is missing: install requirements/dev.txt into the venv"
    base = stack.storefront_url if service == "storefront" else stack.ledger_url
    seed = int(os.environ.get("FUZZ_SEED") or random.SystemRandom().randrange(2**63))
    cmd = [
        str(SCHEMATHESIS),
        "run",
        f"{base}/api/schema/",
        "--checks",
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(seed),
        "--workers",
        "2",
        "--request-timeout",
        "10",
        "--continue-on-failure",
        "--generation-database",
        "none",
        "--no-color",
    ]
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["NO_PROXY"] = "127.0.0.1"
    # hooks.py gives every request a token for the customer it is about.
    env.update(
        SCHEMATHESIS_HOOKS="tests.fuzz.hooks",
        PYTHONPATH=str(ROOT),
        FUZZ_ISSUER_DIR=str(stack.issuer.directory),
        FUZZ_ISSUER=stack.issuer.issuer,
    )
    try:
        run = subprocess.run(
            cmd,
            cwd=tmp_path,  # anything the CLI writes stays out of the repo
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:  # subprocess.run kills the CLI before raising
        pytest.fail(f"schemathesis did not finish within {RUN_TIMEOUT}s (seed {seed}):\n{exc.stdout or ''}")
    output = run.stdout + (f"\n[stderr]\n{run.stderr}" if run.stderr.strip() else "")
    (artifacts / f"fuzz-{service}.txt").write_text(f"$ {' '.join(cmd)}\n\n{output}")
    print(output)

    assert re.search(r"Operations:\s+(\d+) selected", output), f"schema not loaded:\n{output}"
    assert run.returncode == 0, (
        f"schemathesis found problems in the {service} (exit {run.returncode}, seed {seed}; "
        f"rerun with FUZZ_SEED={seed}):\n{_findings(output)}"
    )
    assert "Authentication failed" not in output, f"requests went without a valid token:\n{output}"
    tested = re.search(r"Tested:\s+(\d+)", output)
    assert tested and int(tested.group(1)) >= 2, f"no operation was tested:\n{output}"
