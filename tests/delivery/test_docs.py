"""The guides say one thing about releasing and rolling back, and docs/delivery.md says it.

README, the deploy guide and the runbooks link to docs/delivery.md instead of repeating it:
the links resolve, the emergency rollback switches off what would undo it in the right
order, and nothing still names the edge the data tier replaced.
"""

from __future__ import annotations

import re

import pytest

from .argocd import application_for
from .workflows import REPO

DELIVERY = REPO / "docs" / "delivery.md"
GUIDES = ["README.md", "docs/delivery.md", "docs/deploy-kubernetes.md", "docs/kubernetes-runbooks.md"]


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def paragraphs(path: str) -> list[str]:
    return re.split(r"\n\s*\n", (REPO / path).read_text())


@pytest.mark.parametrize("guide", GUIDES)
def test_links_into_the_delivery_guide_resolve(guide: str):
    anchors = {slug(h) for h in re.findall(r"^#+ (.+)$", DELIVERY.read_text(), re.M)}
    links = re.findall(r"\]\((?:docs/)?delivery\.md#([^)]+)\)", (REPO / guide).read_text())
    for anchor in links:
        assert anchor in anchors, f"{guide}: delivery.md#{anchor}"


@pytest.mark.parametrize("guide", ["README.md", "docs/deploy-kubernetes.md", "docs/kubernetes-runbooks.md"])
def test_rollback_is_a_revert_and_rollout_undo_comes_with_self_heal(guide: str):
    text = (REPO / guide).read_text()
    assert "delivery.md#rolling-back" in text or "kubernetes-runbooks.md#rollback" in text, guide
    for paragraph in paragraphs(guide):
        if "rollout undo" in paragraph:
            assert "self-heal" in paragraph, f"{guide}: {paragraph[:80]}..."


def test_the_emergency_rollback_stops_the_root_then_the_application_then_undoes():
    root = application_for("k8s/argocd/production")["metadata"]["name"]
    app = application_for("k8s/overlays/production")["metadata"]["name"]
    section = DELIVERY.read_text().split("## Rolling back", 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()

    def first(pattern: str) -> int:
        found = [i for i, line in enumerate(lines) if re.search(pattern, line)]
        assert found, pattern
        return found[0]

    stop_root = first(rf"^argocd app set {root} --sync-policy none")
    stop_app = first(rf"^argocd app set {app} --sync-policy none")
    undo = first(r"kubectl -n purchase-system rollout undo")
    restore = first(r"^kubectl apply -n argocd -f k8s/argocd/production.yaml")
    assert stop_root < stop_app < undo < restore


@pytest.mark.parametrize("guide", [*GUIDES, "k8s/argocd/project.yaml"])
def test_no_guide_names_the_retired_edge(guide: str):
    assert "ingress-nginx" not in (REPO / guide).read_text()
