"""Render prometheus-adapter rules the way prometheus-adapter does.

Reads the committed Helm values (k8s/monitoring/prometheus-adapter-values.yaml), so a
test that evaluates the result against a real Prometheus tests what is deployed:

    from tests.monitoring.adapter import render_adapter_query   # or: from .adapter import ...
    render_adapter_query("http_requests_per_second",
                         'namespace="purchase-system",pod=~"storefront-a|storefront-b"', "pod")
    render_adapter_query("purchases_consumer_lag", 'namespace="purchase-system"', "")

What prometheus-adapter (v0.12, pkg/naming/metrics_query.go) passes to a metricsQuery:
- Pods metric (custom.metrics.k8s.io): <<.LabelMatchers>> is the metric selector's
  matchers, then namespace="<ns>", then pod="<name>" or pod=~"<a>|<b>"; <<.GroupBy>> is
  "pod" (the resource's label).
- External metric (external.metrics.k8s.io): <<.LabelMatchers>> is the HPA's
  metricSelector matchers, then namespace="<hpa ns>" (the rule is namespaced by
  default); <<.GroupBy>> is "".
Label values are Go-quoted (%q), which for plain values is JSON-style double quotes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
ADAPTER_VALUES = REPO_ROOT / "k8s" / "monitoring" / "prometheus-adapter-values.yaml"

# Template fields this renderer substitutes; anything else in << >> is an error.
_FIELD = re.compile(r"<<\s*(?P<field>\.[A-Za-z]*)\s*>>")
_ANY_ACTION = re.compile(r"<<.*?>>", re.S)


@dataclass(frozen=True)
class AdapterRule:
    kind: str  # "custom" (Pods/Object metrics) or "external"
    series_query: str
    series: str  # the series name the seriesQuery selects
    name: str  # the metric name the adapter serves
    metrics_query: str  # the raw template
    resources: dict


def load_values(path: Path = ADAPTER_VALUES) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def series_name(series_query: str) -> str:
    """The one series name a seriesQuery selects: `name{...}` or `{__name__="name",...}`."""
    query = series_query.strip()
    m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{.*\})?", query, re.S)
    if m:
        return m.group(1)
    m = re.search(r'__name__\s*=\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"', query)
    if m:
        return m.group(1)
    raise ValueError(f"seriesQuery {series_query!r} does not name exactly one series")


def _go_expand(template: str, match: re.Match) -> str:
    """Go's Regexp.ExpandString for $N / ${N} (the forms the adapter's `as` uses)."""

    def repl(m: re.Match) -> str:
        idx = int(m.group(1) or m.group(2))
        return match.group(idx) or ""

    return re.sub(r"\$(?:\{(\d+)\}|(\d+))", repl, template)


def output_name(rule: dict, series: str) -> str:
    """The metric name the adapter derives from `series` with the rule's name.matches/as."""
    name = rule.get("name") or {}
    matches = name.get("matches") or ".*"
    regex = re.compile(matches)
    m = regex.search(series)
    if m is None:
        raise ValueError(f"series {series!r} does not match name.matches {matches!r}")
    as_ = name.get("as") or ""
    if not as_:
        if regex.groups == 0:
            as_ = "$0"
        elif regex.groups == 1:
            as_ = "$1"
        else:
            raise ValueError(f"name.matches {matches!r} needs an explicit `as`")
    return _go_expand(as_, m)


def adapter_rules(values: dict | None = None) -> list[AdapterRule]:
    values = load_values() if values is None else values
    rules = values.get("rules") or {}
    out = []
    for kind in ("custom", "external"):
        for raw in rules.get(kind) or []:
            series = series_name(raw["seriesQuery"])
            out.append(
                AdapterRule(
                    kind=kind,
                    series_query=raw["seriesQuery"],
                    series=series,
                    name=output_name(raw, series),
                    metrics_query=raw["metricsQuery"],
                    resources=raw.get("resources") or {},
                )
            )
    return out


def render_template(template: str, series: str, label_matchers: str, group_by: str) -> str:
    fields = {".Series": series, ".LabelMatchers": label_matchers, ".GroupBy": group_by}

    def repl(m: re.Match) -> str:
        field = m.group("field")
        if field not in fields:
            raise ValueError(f"unsupported template field <<{field}>> in {template!r}")
        return fields[field]

    rendered = _FIELD.sub(repl, template)
    leftover = _ANY_ACTION.search(rendered)
    if leftover:
        raise ValueError(f"unsupported template action {leftover.group(0)!r} in {template!r}")
    return rendered.strip()


def find_rule(rule_name_or_metric: str, values: dict | None = None) -> AdapterRule:
    rules = adapter_rules(values)
    for rule in rules:
        if rule.name == rule_name_or_metric:
            return rule
    for rule in rules:
        if rule.series == rule_name_or_metric:
            return rule
    known = sorted({r.name for r in rules} | {r.series for r in rules})
    raise KeyError(f"no prometheus-adapter rule serves or reads {rule_name_or_metric!r}; known: {known}")


def render_adapter_query(rule_name_or_metric: str, label_matchers: str, group_by: str) -> str:
    """The PromQL prometheus-adapter sends for an output metric (or its source series).

    label_matchers: e.g. 'namespace="purchase-system",pod=~"storefront-a|storefront-b"'
    group_by: e.g. "pod" (what the adapter passes for a Pods metric) or "namespace,pod".
    """
    rule = find_rule(rule_name_or_metric)
    return render_template(rule.metrics_query, rule.series, label_matchers, group_by)
