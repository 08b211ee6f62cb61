"""Prometheus metrics of the processes under test: scrape a /metrics port, read its samples.

The exposition text is parsed with prometheus_client's own parser, so tests ask for a
sample by name and labels instead of matching text.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.support import http


def scrape(port: int, timeout: float = 5.0) -> str:
    """The exposition text served on 127.0.0.1:`port`/metrics (an error status raises)."""
    response = http.get(f"http://{http.LOCAL_HOST}:{port}/metrics", timeout=timeout)
    response.raise_for_status()
    return response.text


def samples(text: str, name: str, **labels: str) -> list[tuple[dict, float]]:
    """Every sample called `name` whose labels include `labels`, as (labels, value)."""
    return [
        (dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def has(text: str, name: str, **labels: str) -> bool:
    """Whether a series `name{labels}` is exposed (with any value)."""
    return bool(samples(text, name, **labels))


def sample_value(text: str, name: str, **labels: str) -> float:
    """The one sample `name{labels}`; 0.0 when the series is not there yet (a counter not yet hit)."""
    found = samples(text, name, **labels)
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} series"
    return found[0][1] if found else 0.0


def total(text: str, name: str, **labels: str) -> float:
    """The sum of every sample `name{labels}` (0.0 when there is none)."""
    return sum(value for _, value in samples(text, name, **labels))
