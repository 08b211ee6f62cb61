"""Fixtures of the checks over the rendered Kubernetes manifests (tests/k8s)."""

from __future__ import annotations

import pytest

from .manifests import CLUSTER_KUSTOMIZATIONS, KUSTOMIZATIONS, Doc, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Doc]]:
    """Each application kustomization, rendered once per session."""
    return {path: render(path) for path in KUSTOMIZATIONS}


@pytest.fixture(scope="session")
def cluster_rendered() -> dict[str, list[Doc]]:
    """Each cluster kustomization (k8s/cluster/<env>), rendered once per session."""
    return {path: render(path) for path in CLUSTER_KUSTOMIZATIONS}


@pytest.fixture(params=KUSTOMIZATIONS)
def docs(request: pytest.FixtureRequest, rendered: dict[str, list[Doc]]) -> list[Doc]:
    return rendered[request.param]
