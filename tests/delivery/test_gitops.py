"""Production runs what git names by digest (the Argo CD side: test_argocd.py).

The production render's images, and the release's pin script on a copy of k8s/. Offline:
kustomize renders, no cluster.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.k8s.manifests import APP_DEPLOYMENTS, KUBECTL, Doc, containers, is_custom, render, workloads

from .workflows import PRODUCTION_OVERLAY, REPO

PIN = REPO / ".github" / "scripts" / "pin_image.py"
DIGEST_REF = re.compile(r".+@sha256:[0-9a-f]{64}")
APP_IMAGE = "purchase-system"


def images(docs: list[Doc]) -> set[str]:
    return {c["image"] for w in workloads(docs) for c in containers(w)}


def operator_images(value: object) -> set[str]:
    """Every `image` an operator's resource names (MongoDB, its backup agent), at any depth."""
    if isinstance(value, dict):
        found = {value["image"]} if isinstance(value.get("image"), str) else set()
        return found.union(*(operator_images(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(operator_images(v) for v in value))
    return set()


def tag(image: str) -> str:
    name = image.split("@", 1)[0]
    return name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else ""


def repository(image: str) -> str:
    name = image.split("@", 1)[0]
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


@pytest.fixture(scope="module")
def production() -> list[Doc]:
    return render("k8s/overlays/production")


# --- pinned by digest -------------------------------------------------------------------------


def test_production_runs_the_application_image_by_digest(production: list[Doc]):
    app = {
        c["image"]
        for name in APP_DEPLOYMENTS
        for w in workloads(production)
        if w["metadata"]["name"] == name
        for c in containers(w)
    }
    assert len(app) == 1, app
    (image,) = app
    assert DIGEST_REF.fullmatch(image), image
    # Jobs, CronJobs and init containers of the application run the same pinned image.
    assert {i for i in images(production) if repository(i) == repository(image)} == {image}


def test_production_workloads_all_run_an_image_by_digest(production: list[Doc]):
    # The data tier's pods are the operators' (their images follow the resources below).
    assert not {i for i in images(production) if not DIGEST_REF.fullmatch(i)}


def test_the_operators_resources_name_their_images_by_a_fixed_version(production: list[Doc]):
    named = {i for d in production if is_custom(d) for i in operator_images(d["spec"])}
    assert named, "the PerconaServerMongoDB names its images"
    for image in named:
        assert DIGEST_REF.fullmatch(image) or tag(image) not in ("", "latest"), image
    (kafka,) = [d for d in production if d["kind"] == "Kafka"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", kafka["spec"]["kafka"]["version"])


def test_no_overlay_runs_a_moving_tag():
    for path in ("k8s/overlays/local", "k8s/overlays/production"):
        docs = render(path)
        for image in images(docs) | {i for d in docs if is_custom(d) for i in operator_images(d["spec"])}:
            assert "@" in image or tag(image) not in ("", "latest"), f"{path}: {image}"


def test_the_overlay_digest_is_a_valid_sha256():
    overlay = yaml.safe_load((REPO / PRODUCTION_OVERLAY).read_text())
    (entry,) = [e for e in overlay["images"] if e["name"] == APP_IMAGE]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", entry["digest"])


# --- the release's pin, on a copy ------------------------------------------------------------


def pin(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PIN), str(tree / PRODUCTION_OVERLAY), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def k8s_copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "k8s", tmp_path / "k8s")
    return tmp_path


def render_copy(tree: Path) -> list[Doc]:
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(tree / "k8s/overlays/production")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_pin_rewrites_only_the_image_lines_and_production_renders_the_new_digest(k8s_copy: Path):
    digest = "sha256:" + "ab12" * 16
    before = (k8s_copy / PRODUCTION_OVERLAY).read_text()
    result = pin(k8s_copy, APP_IMAGE, "ghcr.io/acme/purchase-system", "1.4.0", digest)
    assert result.returncode == 0, result.stderr
    after = (k8s_copy / PRODUCTION_OVERLAY).read_text()
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert [b.strip() for _, b in changed] == [
        "newName: ghcr.io/acme/purchase-system",
        'newTag: "1.4.0"',
        f"digest: {digest}",
    ]
    rendered = images(render_copy(k8s_copy))
    assert f"ghcr.io/acme/purchase-system:1.4.0@{digest}" in rendered
    assert not {i for i in rendered if "purchase-system" in i and digest not in i}


@pytest.mark.parametrize(
    "args, error",
    [
        ((APP_IMAGE, "ghcr.io/acme/purchase-system", "1.4.0", "sha256:1234"), "not a sha256 digest"),
        ((APP_IMAGE, "ghcr.io/acme/purchase-system", "1.4.0", "latest"), "not a sha256 digest"),
        ((APP_IMAGE, "GHCR.io/Acme/x", "1.4.0", "sha256:" + "0" * 64), "not an image repository"),
        (("no-such-image", "ghcr.io/acme/x", "1.4.0", "sha256:" + "0" * 64), "no images: entry"),
    ],
)
def test_pin_refuses_what_it_cannot_pin_and_leaves_the_file_alone(k8s_copy: Path, args, error):
    before = (k8s_copy / PRODUCTION_OVERLAY).read_text()
    result = pin(k8s_copy, *args)
    assert result.returncode == 1 and error in result.stderr
    assert (k8s_copy / PRODUCTION_OVERLAY).read_text() == before
