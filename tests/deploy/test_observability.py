"""The shipped observability assets: the alert rules pass `promtool check rules` and their own `promtool test rules`
cases, the compose Prometheus config passes `promtool check config`, the Grafana dashboard and provisioning parse,
and every metric the dashboard or the rules query is one the services really export (read from their source, so a
renamed metric fails here instead of showing an empty panel).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import OBSERVABILITY, REPO_ROOT, ok, on_path, run

# These run the real tools (helm, hadolint, promtool, docker-compose, uv): not unit tests.
pytestmark = pytest.mark.integration

RULES = OBSERVABILITY / "prometheus" / "opsbus-alerts.yaml"
DASHBOARD = OBSERVABILITY / "grafana" / "dashboards" / "opsbus-overview.json"
METRIC = re.compile(r"\bopsbus_[a-z0-9_]+\b")
# Series Prometheus adds itself, or that are not opsbus's.
NOT_EXPORTED_BY_OPSBUS = {"up"}


def exported_metrics() -> set[str]:
    """Every series name the opsbus code can expose: Counter/Gauge/Histogram/Summary names found in the source,
    with the suffixes prometheus-client adds (`_total`, `_bucket`/`_sum`/`_count`)."""
    names: set[str] = set()
    sources = [*(REPO_ROOT / "libs" / "common" / "src").rglob("*.py"), *(REPO_ROOT / "services").glob("*/src/**/*.py")]
    for path in sources:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
                continue
            kind = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            name = node.args[0].value
            if kind not in {"Counter", "Gauge", "Histogram", "Summary"} or not isinstance(name, str):
                continue
            if kind == "Counter":
                base = name.removesuffix("_total")
                names |= {f"{base}_total", f"{base}_created"}
            elif kind in {"Histogram", "Summary"}:
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count", name}
            else:
                names.add(name)
    return names


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def test_source_scan_finds_the_known_metrics() -> None:
    # Guards the scanner itself: if it found nothing, the cross-checks below would prove nothing.
    found = exported_metrics()
    assert {
        "opsbus_events_published_total",
        "opsbus_consumer_pending_messages",
        "opsbus_handler_duration_seconds_bucket",
        "opsbus_watcher_detection_latency_seconds_bucket",
        "opsbus_notifier_delivery_attempts_total",
    } <= found
    assert "opsbus_made_up_total" not in found


def test_alert_rules_pass_promtool() -> None:
    promtool = on_path("promtool")
    out = ok(promtool, "check", "rules", RULES)
    assert "SUCCESS" in out
    tests = ok(promtool, "test", "rules", OBSERVABILITY / "prometheus" / "opsbus-alerts.test.yaml")
    assert "SUCCESS" in tests


def test_promtool_catches_a_broken_rule(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: sum(rate(x[5m]\n")
    result = run(on_path("promtool"), "check", "rules", broken)
    assert result.returncode != 0


def test_compose_prometheus_config_passes_promtool() -> None:
    out = ok(on_path("promtool"), "check", "config", OBSERVABILITY / "prometheus" / "prometheus.yml")
    assert "SUCCESS: 14 rules found" in out


def test_alert_rules_cover_what_operators_need() -> None:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    rules = {r["alert"]: r for g in groups for r in g["rules"]}
    for needed in (
        "OpsbusConsumerLagHigh",
        "OpsbusDeadLettersGrowing",
        "OpsbusWatchDisconnected",
        "OpsbusRemediationFailureRateHigh",
    ):
        assert needed in rules
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_every_metric_queried_is_exported() -> None:
    exported = exported_metrics()
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    queried = {name: f"rule {r['alert']}" for g in groups for r in g["rules"] for name in METRIC.findall(r["expr"])}
    for panel in _panels(_dashboard()):
        for target in panel.get("targets", []):
            for name in METRIC.findall(target["expr"]):
                queried[name] = f"panel {panel['title']!r}"
    assert len(queried) >= 15
    unknown = {name: where for name, where in queried.items() if name not in exported}
    assert not unknown, f"queried but exported by no opsbus service: {unknown}"


def test_dashboard_shows_the_pipeline_end_to_end() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "opsbus-overview"
    panels = _panels(dashboard)
    rows = [p["title"] for p in panels if p["type"] == "row"]
    assert rows == ["Pipeline", "Detection", "Remediation", "Rollouts", "Notifications", "Gateway"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    exprs = " ".join(t["expr"] for p in panels for t in p.get("targets", []))
    for series in (
        "opsbus_events_published_total",
        "opsbus_consumer_pending_messages",
        "opsbus_dlq_messages_total",
        "opsbus_watcher_alerts_firing",
        "opsbus_watcher_detection_latency_seconds_bucket",
        "io[.]opsbus[.]recovery",
        "io[.]opsbus[.]deploy",
        "opsbus_notifier_delivery_attempts_total",
    ):
        assert series in exprs, series
    for panel in panels:
        if panel["type"] != "row":
            assert panel["targets"] and panel["description"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_grafana_provisioning_points_at_the_dashboards() -> None:
    provisioning = OBSERVABILITY / "grafana" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "opsbus.yaml").read_text(encoding="utf-8"))
    assert {d["type"] for d in datasources["datasources"]} == {"prometheus", "jaeger"}
    providers = yaml.safe_load((provisioning / "dashboards" / "opsbus.yaml").read_text(encoding="utf-8"))
    (provider,) = providers["providers"]
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/observability/grafana/dashboards:{provider['options']['path']}:ro" in mounts
