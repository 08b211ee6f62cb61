"""Dependency updates (renovate.json, .github/workflows/renovate.yml), checked offline.

check-jsonschema validates the file against its built-in Renovate schema; that schema lets
unknown keys through, so each key is also looked up among the schema's options. The
patterns Renovate would apply are applied here to the files they are meant to match.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest

from .workflows import REPO, make_targets, run_tool, steps, workflows

CONFIG = REPO / "renovate.json"


def config() -> dict:
    return json.loads(CONFIG.read_text())


def schema_options() -> set[str]:
    schema = json.loads(
        (resources.files("check_jsonschema.builtin_schemas.vendor") / "renovate.json").read_text()
    )
    return set(schema["properties"]) | set(schema.get("definitions", {}))


def js_pattern(pattern: str) -> re.Pattern[str]:
    """A Renovate `/regex/` file pattern, or a named-group regex, as Python's re."""
    if pattern.startswith("/") and pattern.endswith("/"):
        pattern = pattern[1:-1]
    return re.compile(pattern.replace("(?<", "(?P<"))


def test_config_matches_the_built_in_schema():
    result = run_tool("check-jsonschema", "--builtin-schema", "vendor.renovate", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_key_is_a_renovate_option():
    options = schema_options()
    conf = config()
    nested = [
        conf,
        conf["pip_requirements"],
        *conf["packageRules"],
        *conf["customManagers"],
        *[rule["postUpgradeTasks"] for rule in conf["packageRules"] if "postUpgradeTasks" in rule],
    ]
    unknown = {key for obj in nested for key in obj if key not in options and key != "$schema"}
    assert unknown == set()


def test_python_pins_are_read_from_every_requirements_file_and_never_from_a_lock():
    patterns = [js_pattern(p) for p in config()["pip_requirements"]["managerFilePatterns"]]
    files = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "requirements").iterdir())
    matched = {f for f in files if any(p.search(f) for p in patterns)}
    assert matched == {f for f in files if f.endswith(".txt")}


def test_lock_files_are_regenerated_with_make_lock():
    (rule,) = [r for r in config()["packageRules"] if "postUpgradeTasks" in r]
    assert rule["matchManagers"] == ["pip_requirements"]
    tasks = rule["postUpgradeTasks"]
    assert tasks["commands"] == ["make lock"] and "lock" in make_targets()
    written = set(
        re.findall(r"^compile (requirements/\S+\.lock)", (REPO / "scripts/lock.sh").read_text(), re.M)
    )
    assert written and all(Path(f).match(tasks["fileFilters"][0]) for f in written)
    # Self-hosted Renovate may run exactly that command, nothing else.
    (renovate,) = [s for s in steps("renovate", workflows()["renovate"]) if "renovate@" in s.run]
    allowed = json.loads(renovate.body["env"]["RENOVATE_ALLOWED_COMMANDS"])
    assert [c for c in ["make lock", "make test", "sh -c id"] if any(re.search(a, c) for a in allowed)] == [
        "make lock"
    ]
    assert re.fullmatch(r"npx --yes renovate@\d+\.\d+\.\d+", renovate.run), "a pinned Renovate version"


def test_the_release_base_image_is_tracked():
    (manager,) = config()["customManagers"]
    files = [js_pattern(p) for p in manager["managerFilePatterns"]]
    assert any(p.search(".github/workflows/release.yml") for p in files)
    text = (REPO / ".github/workflows/release.yml").read_text()
    match = js_pattern(manager["matchStrings"][0]).search(text)
    assert match, "the custom manager finds BASE_IMAGE in release.yml"
    dockerfile_base = re.search(r"^ARG BASE_IMAGE=(\S+)$", (REPO / "Dockerfile").read_text(), re.M)[1]
    assert f"{match['depName']}:{match['currentValue']}" == dockerfile_base


@pytest.mark.parametrize(
    "package, tag, allowed",
    [
        ("python", "3.11-slim", True),
        ("python", "3.11.14-slim", True),
        ("python", "3.12-slim", False),
        ("python", "3.1-slim", False),
        ("debian", "12", True),
        ("debian", "13", False),
    ],
)
def test_base_images_stay_on_the_promised_versions(package: str, tag: str, allowed: bool):
    (rule,) = [r for r in config()["packageRules"] if r.get("matchPackageNames") == [package]]
    constraint = rule["allowedVersions"]
    if constraint.startswith("/"):
        ok = bool(js_pattern(constraint).search(tag))
    else:  # "<N"
        ok = int(tag.split(".")[0]) < int(constraint.lstrip("<"))
    assert ok is allowed


def test_the_dockerfile_keeps_its_tag_while_workflows_pin_digests():
    rules = config()["packageRules"]
    assert any(r.get("matchManagers") == ["dockerfile"] and r["pinDigests"] is False for r in rules)
    assert any("github-actions" in r.get("matchManagers", []) and r.get("pinDigests") for r in rules)
