"""The code type-checks: mypy (with django-stubs and DRF's stubs) under the committed configuration.

mypy runs as the project's tools do (`.venv/bin/mypy` from the project root, no
arguments): what it checks and how strictly is `[tool.mypy]` in pyproject.toml.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 300


def test_mypy_passes_with_the_committed_configuration():
    # The mypy installed beside this interpreter: the project's virtualenv.
    mypy = Path(sys.executable).parent / "mypy"
    assert mypy.is_file(), f"no mypy beside {sys.executable}; `make setup` installs it"
    result = subprocess.run(
        [str(mypy)], cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    assert result.returncode == 0, f"mypy exited {result.returncode}:\n{result.stdout}{result.stderr}"
