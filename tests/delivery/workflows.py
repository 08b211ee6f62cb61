"""Reading the GitHub Actions workflows, the Makefile and the tools that check them (tests/delivery).

The tools (zizmor, check-jsonschema) come from the running virtualenv
(requirements/dev.txt); a missing tool is a failure, not a skip. Everything is offline.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WORKFLOWS = REPO / ".github" / "workflows"
PRODUCTION_OVERLAY = "k8s/overlays/production/kustomization.yaml"
# `uses: owner/repo[/path]@<40 hex> # vX.Y.Z`
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<action>[^@\s]+)@(?P<ref>\S+)(?:\s+#\s*(?P<comment>\S.*))?$")

Doc = dict[str, Any]


@dataclass(frozen=True)
class Step:
    workflow: str
    job: str
    index: int
    body: Doc

    @property
    def uses(self) -> str:
        return str(self.body.get("uses", ""))

    @property
    def action(self) -> str:
        return self.uses.split("@", 1)[0]

    @property
    def run(self) -> str:
        return str(self.body.get("run", ""))

    @property
    def with_(self) -> Doc:
        return self.body.get("with", {}) or {}


def workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def load(path: Path) -> Doc:
    doc = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as true.
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def workflows() -> dict[str, Doc]:
    return {path.stem: load(path) for path in workflow_files()}


def triggers(workflow: Doc) -> dict[str, Any]:
    on = workflow["on"]
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return dict(on)


def steps(name: str, workflow: Doc) -> list[Step]:
    return [
        Step(name, job_name, index, step)
        for job_name, job in workflow["jobs"].items()
        for index, step in enumerate(job.get("steps", []))
    ]


def all_steps() -> list[Step]:
    return [step for name, workflow in workflows().items() for step in steps(name, workflow)]


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z0-9-]*):", (REPO / "Makefile").read_text(), re.M))


def tool(name: str) -> Path:
    path = BIN / name
    assert path.exists(), f"{path} not found: `make setup` installs requirements/dev.lock"
    return path


def run_tool(name: str, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tool(name)), *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
