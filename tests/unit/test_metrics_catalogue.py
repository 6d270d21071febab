"""Every metric named in the Grafana dashboard, the alert rules and docs/operations.md is
one the API or the worker exports, and the docs list every exported metric."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from rotator.metrics import exposition
from rotator.metrics.worker import WORKER

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "keyrotator.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
OPERATIONS = ROOT / "docs" / "operations.md"

_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
_PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "inf", "nan", "le",
}  # fmt: skip


def families() -> dict[str, str]:
    """Exported family name -> type, the API's and the worker's."""
    text = exposition.render().decode() + generate_latest(WORKER).decode()
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def exported_series() -> set[str]:
    """Every series name a query can use (a counter's `_total`, a histogram's three)."""
    return {name + s for name, kind in families().items() for s in _SUFFIXES[kind]}


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression: identifiers that are not functions (followed
    by `(`), keywords, label names or values (inside `{}` or `by (...)`), or Grafana's
    variables."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range durations, $__rate_interval
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        following = expr[m.end() :].lstrip()[:1]
        word = m.group()
        if (
            following == "("
            or word.lower() in _PROMQL_WORDS
            or expr[m.start() - 1 : m.start()] == "$"
        ):
            continue
        names.add(word)
    return names


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in doc["panels"] for t in panel.get("targets", [])]


def alert_exprs() -> list[str]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule["expr"] for group in doc["groups"] for rule in group["rules"]]


def test_the_parser_finds_metric_names():
    expr = 'histogram_quantile(0.99, sum by (le) (rate(x_bucket{a="b"}[5m]))) > 1 or min(y) == 0'
    assert metric_names(expr) == {"x_bucket", "y"}


def test_every_metric_of_the_dashboard_is_exported():
    exprs = dashboard_exprs()
    assert len(exprs) >= 10
    named = set().union(*(metric_names(e) for e in exprs))
    assert named and named <= exported_series(), sorted(named - exported_series())


def test_every_metric_of_the_alert_rules_is_exported():
    alerts = {r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}
    assert {"KeyrotatorStoreDown", "KeyrotatorWebhookFailures", "KeyrotatorNoActiveKeys",
            "KeyrotatorLimitReached", "KeyrotatorEventLag"} <= alerts  # fmt: skip
    named = set().union(*(metric_names(e) for e in alert_exprs()))
    assert named and named <= exported_series(), sorted(named - exported_series())


def test_the_operations_page_lists_every_exported_metric():
    text = OPERATIONS.read_text()
    table = text[text.index("<!-- metrics:") :]
    listed = set(re.findall(r"^\| `(rotator_[a-z0-9_]+)` \|", table, re.MULTILINE))
    exported = {name + ("_total" if kind == "counter" else "") for name, kind in families().items()}
    assert listed == exported
