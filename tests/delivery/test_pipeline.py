"""The pipeline runs what a developer runs: CI's jobs are the Makefile's commands on Debian 12,
and the release builds the Dockerfile `make image` builds, scans, signs and pins by digest.
"""

from __future__ import annotations

import re
import shlex

from .workflows import PRODUCTION_OVERLAY, REPO, Step, make_targets, steps, triggers, workflows


def ci_runs() -> dict[str, list[str]]:
    ci = workflows()["ci"]
    return {job: [s.run.strip() for s in steps("ci", ci) if s.job == job and s.run] for job in ci["jobs"]}


def release_step(job: str, action: str, index: int = 0) -> Step:
    found = [s for s in steps("release", workflows()["release"]) if s.job == job and s.action == action]
    assert len(found) > index, f"release/{job} has no step #{index} using {action}"
    return found[index]


def dockerfile_base() -> str:
    match = re.search(r"^ARG BASE_IMAGE=(\S+)$", (REPO / "Dockerfile").read_text(), re.M)
    assert match
    return match[1]


# --- CI -------------------------------------------------------------------------------------


def test_ci_runs_on_pull_requests_and_on_main():
    on = triggers(workflows()["ci"])
    assert "pull_request" in on
    assert on["push"]["branches"] == ["main"]


def test_ci_jobs_run_on_debian_12_as_the_readme_promises():
    for name, job in workflows()["ci"]["jobs"].items():
        image = job["container"]["image"]
        assert re.fullmatch(r"debian:12(@sha256:[0-9a-f]{64})?", image), f"{name}: {image}"
        prerequisites = job["steps"][0]["run"]
        assert {"make", "python3", "python3-venv"} <= set(prerequisites.split()), name


def test_ci_runs_the_whole_suite_with_make_test():
    assert ci_runs()["test"][-1] == "make test"
    assert workflows()["ci"]["env"]["CI"] == "true"  # nothing is skipped (conftest.py)


def test_lint_types_and_manifests_fail_on_their_own():
    runs = ci_runs()
    assert "make lint" in runs["lint"]
    # The very command tests/test_typing.py runs: the virtualenv's mypy, no arguments.
    assert ".venv/bin/mypy" in runs["typecheck"]
    manifests = shlex.split(runs["manifests"][-1])
    assert manifests[:2] == ["make", "test"]
    assert set(manifests[2].removeprefix("PYTEST_ARGS=").split()) == {"tests/k8s", "tests/monitoring"}
    assert ".venv/bin/python -m pytest tests/delivery" in runs["workflows"]


def test_every_make_command_in_a_workflow_is_a_makefile_target():
    targets, seen = make_targets(), set()
    for name, workflow in workflows().items():
        for step in steps(name, workflow):
            for command in re.findall(r"^\s*make ([a-z][a-z0-9-]*)", step.run, re.M):
                assert command in targets, f"{name}/{step.job}: make {command}"
                seen.add(command)
    assert seen >= {"lint", "setup", "test"}


def test_ci_caches_pip_by_the_lock_files():
    for name, job in workflows()["ci"]["jobs"].items():
        cache = [s for s in job["steps"] if s.get("uses", "").startswith("actions/cache@")]
        assert cache, name
        assert "hashFiles('requirements/*.lock')" in cache[0]["with"]["key"]
        assert cache[0]["with"]["path"] == workflows()["ci"]["env"]["PIP_CACHE_DIR"]


# --- release ----------------------------------------------------------------------------------


def test_release_runs_on_version_tags_only():
    assert triggers(workflows()["release"]) == {"push": {"tags": ["v*"]}}


def test_release_builds_the_dockerfile_on_its_default_base():
    env_base = workflows()["release"]["env"]["BASE_IMAGE"]
    name, _, digest = env_base.partition("@")
    assert name == dockerfile_base(), "the release builds on the base `make image` uses"
    assert not digest or re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    for index in (0, 1):
        build = release_step("image", "docker/build-push-action", index).with_
        assert build["file"] == "Dockerfile" and build["context"] == "."
        assert build["build-args"] == "BASE_IMAGE=${{ env.BASE_IMAGE }}"


def test_release_scans_before_it_pushes_and_fails_on_fixable_criticals():
    image_steps = [
        s.action or s.run[:20] for s in steps("release", workflows()["release"]) if s.job == "image"
    ]
    scan = image_steps.index("aquasecurity/trivy-action")
    pushes = [i for i, s in enumerate(image_steps) if s == "docker/build-push-action"]
    assert pushes[0] < scan < pushes[1]
    local, pushed = (release_step("image", "docker/build-push-action", i).with_ for i in (0, 1))
    assert local.get("load") is True and not local.get("push")
    assert local["tags"] == release_step("image", "aquasecurity/trivy-action").with_["image-ref"]
    trivy = release_step("image", "aquasecurity/trivy-action").with_
    assert (trivy["severity"], trivy["ignore-unfixed"], str(trivy["exit-code"])) == ("CRITICAL", True, "1")
    assert pushed["push"] is True


def test_release_pushes_the_version_tag_with_sbom_and_provenance_and_records_the_digest():
    pushed = release_step("image", "docker/build-push-action", 1)
    assert pushed.body["id"] == "push"
    assert pushed.with_["tags"] == "${{ steps.names.outputs.image }}:${{ steps.names.outputs.version }}"
    assert pushed.with_["sbom"] is True and pushed.with_["provenance"] == "mode=max"
    job = workflows()["release"]["jobs"]["image"]
    assert job["outputs"]["digest"] == "${{ steps.push.outputs.digest }}"
    assert any(
        "GITHUB_STEP_SUMMARY" in s["run"] and "$DIGEST" in s["run"] for s in job["steps"] if "run" in s
    )


def test_registry_is_a_setting_with_ghcr_by_default():
    names = next(s for s in steps("release", workflows()["release"]) if s.body.get("id") == "names")
    assert names.body["env"]["REGISTRY"] == "${{ vars.IMAGE_REGISTRY || 'ghcr.io' }}"


def test_release_signs_the_digest_keyless_and_verifies_the_identity():
    sign = workflows()["release"]["jobs"]["sign"]
    assert sign["needs"] == "image"
    runs = "\n".join(s.get("run", "") for s in sign["steps"])
    assert 'cosign sign --yes "$REF"' in runs
    assert "--certificate-oidc-issuer https://token.actions.githubusercontent.com" in runs
    refs = {s["env"]["REF"] for s in sign["steps"] if "REF" in s.get("env", {})}
    assert refs == {"${{ needs.image.outputs.image }}@${{ needs.image.outputs.digest }}"}
    assert "--key" not in runs  # keyless: the certificate names the workflow


def test_promotion_pins_the_signed_digest_in_the_production_overlay_only():
    promote = workflows()["release"]["jobs"]["promote"]
    assert set(promote["needs"]) == {"image", "sign"}
    pin = next(s for s in promote["steps"] if "pin_image.py" in s.get("run", ""))
    args = shlex.split(pin["run"].replace("\\\n", " "))
    assert args[1:5] == [".github/scripts/pin_image.py", PRODUCTION_OVERLAY, "purchase-system", "$IMAGE"]
    assert pin["env"]["DIGEST"] == "${{ needs.image.outputs.digest }}"
    pull_request = next(
        s for s in promote["steps"] if s.get("uses", "").startswith("peter-evans/create-pull-request@")
    )
    assert pull_request["with"]["add-paths"] == PRODUCTION_OVERLAY


def test_the_readme_verification_accepts_only_this_release_workflow_on_a_tag():
    readme = (REPO / "README.md").read_text()
    command = re.search(r"^cosign verify .+?--certificate-oidc-issuer (\S+)$", readme, re.M | re.S)
    assert command, "the README shows how to verify a running image"
    assert command[1] == "https://token.actions.githubusercontent.com"
    pattern = re.search(r"--certificate-identity-regexp '([^']+)'", command[0])[1]
    regexp = re.compile(pattern.replace("<owner>", "acme").replace("<repo>", "shop"))
    workflow = "https://github.com/acme/shop/.github/workflows"
    assert regexp.search(f"{workflow}/release.yml@refs/tags/v1.4.0")
    assert not regexp.search(f"{workflow}/release.yml@refs/heads/main")
    assert not regexp.search(f"{workflow}/ci.yml@refs/tags/v1.4.0")
    assert not regexp.search("https://github.com/mallory/shop/.github/workflows/release.yml@refs/tags/v1.4.0")
    # The release verifies with the identity its certificate carries: the workflow's own ref.
    sign = workflows()["release"]["jobs"]["sign"]["steps"]
    identity = next(s["env"]["IDENTITY"] for s in sign if "IDENTITY" in s.get("env", {}))
    assert identity == "${{ github.server_url }}/${{ github.workflow_ref }}"
