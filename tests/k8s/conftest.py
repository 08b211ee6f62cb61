"""Fixtures of the checks over the rendered Kubernetes manifests (tests/k8s)."""

from __future__ import annotations

import pytest
import yaml

from .manifests import KUSTOMIZATIONS, REPO, Doc, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Doc]]:
    """Each kustomization, rendered once per session."""
    return {path: render(path) for path in KUSTOMIZATIONS}


@pytest.fixture(scope="session")
def secret_example() -> Doc:
    return yaml.safe_load((REPO / "k8s/secret.example.yaml").read_text())


@pytest.fixture(params=KUSTOMIZATIONS)
def docs(request: pytest.FixtureRequest, rendered: dict[str, list[Doc]]) -> list[Doc]:
    return rendered[request.param]
