"""Workflow hygiene, offline: least privilege, pinned actions, no persisted credentials, no
untrusted code with secrets; zizmor and check-jsonschema (its built-in schemas) agree.

The workflows themselves only run on GitHub's hosted runners; what can be checked here is
that they are well-formed, safe, and run the same commands a developer runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from .workflows import (
    REPO,
    USES,
    WORKFLOWS,
    all_steps,
    load,
    run_tool,
    steps,
    triggers,
    workflow_files,
    workflows,
)

# Every write permission a job holds, and why; anything else is read or none.
WRITE_PERMISSIONS = {
    ("release", "image"): {"packages"},  # push the image
    ("release", "sign"): {"id-token", "packages"},  # keyless certificate; store the signature
    ("release", "promote"): {"contents", "pull-requests"},  # the digest pull request
}
# Triggers that run with secrets or a write token on code a pull request controls.
UNTRUSTED_TRIGGERS = {"pull_request_target", "workflow_run"}


def test_there_are_workflows_for_ci_release_and_dependency_updates():
    assert set(workflows()) >= {"ci", "release", "renovate"}


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_workflow_permissions_are_least_privilege(path: Path):
    workflow = load(path)
    top = workflow.get("permissions")
    assert top == {} or (isinstance(top, dict) and set(top.values()) <= {"read", "none"}), (
        f"{path.name}: the workflow's default permissions must be {{}} or read-only, not {top!r}"
    )
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, f"{path.name}/{name}: every job states its permissions"
        granted = job["permissions"]
        assert isinstance(granted, dict), f"{path.name}/{name}: permissions by scope, not {granted!r}"
        writes = {scope for scope, level in granted.items() if level == "write"}
        assert writes == WRITE_PERMISSIONS.get((path.stem, name), set()), f"{path.name}/{name}: {writes}"


def test_only_the_signing_job_can_ask_for_an_oidc_token():
    holders = [
        (name, job_name)
        for name, workflow in workflows().items()
        for job_name, job in workflow["jobs"].items()
        if job.get("permissions", {}).get("id-token") == "write"
    ]
    assert holders == [("release", "sign")]


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_every_action_is_pinned_by_commit_sha_with_its_version(path: Path):
    lines = [line for line in path.read_text().splitlines() if re.match(r"^\s*(-\s+)?uses:", line)]
    assert lines, f"{path.name} uses no actions"
    for line in lines:
        match = USES.match(line)
        assert match, f"{path.name}: cannot read {line.strip()!r}"
        if match["action"].startswith("./"):
            continue
        assert re.fullmatch(r"[0-9a-f]{40}", match["ref"]), (
            f"{path.name}: {match['action']} is not pinned by SHA"
        )
        assert match["comment"] and re.fullmatch(r"v\d+(\.\d+)*", match["comment"].strip()), (
            f"{path.name}: {match['action']}@{match['ref']} needs its version in a comment (# v1.2.3)"
        )


def test_one_action_version_is_pinned_to_one_commit():
    pins: dict[tuple[str, str], set[str]] = {}
    for path in workflow_files():
        for line in path.read_text().splitlines():
            match = USES.match(line)
            if match and match["comment"]:
                pins.setdefault((match["action"], match["comment"].strip()), set()).add(match["ref"])
    assert pins
    assert {key: refs for key, refs in pins.items() if len(refs) > 1} == {}


def test_checkout_never_persists_credentials():
    checkouts = [step for step in all_steps() if step.action == "actions/checkout"]
    assert checkouts
    for step in checkouts:
        assert step.with_.get("persist-credentials") is False, f"{step.workflow}/{step.job}: {step.body}"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_no_trigger_runs_untrusted_code_with_secrets(path: Path):
    assert not set(triggers(load(path))) & UNTRUSTED_TRIGGERS


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_run_steps_read_context_values_from_the_environment(path: Path):
    # ${{ }} inside a shell script is pasted in before the shell parses it (injection);
    # values reach scripts as environment variables instead.
    for step in steps(path.stem, load(path)):
        assert "${{" not in step.run, f"{path.name}/{step.job}: {step.run!r}"


# --- the tools ------------------------------------------------------------------------------


def test_zizmor_reports_nothing_of_medium_severity_or_above():
    result = run_tool(
        "zizmor",
        "--offline",
        "--strict-collection",
        "--min-severity",
        "medium",
        "--format",
        "json",
        ".github",
    )
    findings = json.loads(result.stdout or "[]")
    summary = [
        (f["ident"], f["determinations"]["severity"], f["locations"][0]["symbolic"]["key"]) for f in findings
    ]
    assert result.returncode == 0 and not findings, f"zizmor: {summary}\n{result.stderr[-2000:]}"


def test_zizmor_does_catch_an_unsafe_workflow(tmp_path: Path):
    # The check above is only worth something if zizmor runs and audits: a workflow with the
    # classic mistakes must be reported.
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "on: pull_request_target\n"
        "jobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n        with:\n"
        "          ref: ${{ github.event.pull_request.head.sha }}\n"
        '      - run: echo "${{ github.event.pull_request.title }}"\n'
    )
    result = run_tool("zizmor", "--offline", "--min-severity", "medium", "--format", "json", str(bad))
    found = {f["ident"] for f in json.loads(result.stdout)}
    assert result.returncode != 0
    assert {"dangerous-triggers", "template-injection", "unpinned-uses", "artipacked"} <= found, found


@pytest.mark.parametrize(
    "schema",
    ["vendor.github-workflows", "custom.github-workflows-require-timeout"],
    ids=["schema", "timeouts"],
)
def test_workflows_match_the_built_in_schema(schema: str):
    result = run_tool("check-jsonschema", "--builtin-schema", schema, *map(str, workflow_files()))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path: Path):
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump({"on": "push", "jobs": {"build": {"steps": [{"run": "make test"}]}}}))
    result = run_tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(broken))
    assert result.returncode != 0 and "runs-on" in result.stdout, result.stdout


def test_workflows_folder_holds_only_workflows():
    assert {p.suffix for p in WORKFLOWS.iterdir()} <= {".yml", ".yaml"}
    assert (REPO / ".github" / "scripts" / "pin_image.py").is_file()
