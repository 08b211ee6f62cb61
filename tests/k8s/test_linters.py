"""Linters over the deliverable: yamllint on k8s/, hadolint on the Dockerfile, checkov on both.

The tools come from the project's virtualenvs (requirements/k8s-checks.txt in .venv,
requirements/checkov.txt in .venv-checkov, which `make test` sets up); a missing tool
is a failure. Accepted checkov findings are listed, with reasons, in .checkov.yaml only.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CHECKOV = REPO / os.environ.get("CHECKOV_VENV", ".venv-checkov") / "bin" / "checkov"


def run(tool: Path, *args: str, timeout: int = 600) -> None:
    assert tool.exists(), f"{tool} not found: run `make setup-test`"
    result = subprocess.run([str(tool), *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{tool.name} {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"


def test_yamllint_is_clean():
    run(BIN / "yamllint", "--strict", "-c", ".yamllint", "k8s", ".yamllint", ".checkov.yaml")


def test_hadolint_is_clean():
    run(BIN / "hadolint", "Dockerfile")


@pytest.mark.parametrize(
    "target",
    [
        ("-d", "k8s", "--framework", "kubernetes,dockerfile"),
        # Given both -d and -f, checkov scans only the directory: the Dockerfile gets its own run.
        ("-f", "Dockerfile", "--framework", "dockerfile"),
    ],
    ids=["k8s", "Dockerfile"],
)
def test_checkov_finds_nothing_not_accepted(target):
    run(CHECKOV, "--config-file", ".checkov.yaml", *target, "--compact", "--quiet", "--skip-download")
