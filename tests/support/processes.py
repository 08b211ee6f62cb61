"""The project's own commands run to their end, as a deployment would start them."""

from __future__ import annotations

import subprocess

from devstack.stack import PYTHON, ROOT


def run_python(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """`python <args>` in the project's root (`-m <module>` or `manage.py <command>`), its output
    captured as text; `env` replaces the environment when given. Bounded by `timeout`."""
    return subprocess.run([PYTHON, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
