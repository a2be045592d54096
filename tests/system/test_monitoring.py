"""deploy/monitoring/: the Grafana dashboard is current with dashboard.py, the alert
rules are well formed (and, with promtool, fire on their unit-test series), and every
metric a panel or an alert names is one that a real gateway, presence, sessions or
activity process serves on /metrics — a renamed metric cannot leave a blank panel or an
alert that can never fire."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support import Activity, Gateway, Presence, Sessions

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
_METRIC = re.compile(r"\b(goldwire_[a-z0-9_]+)")
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    doc = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return [t["expr"] for p in doc["panels"] for t in p["targets"]]


def test_the_dashboard_is_current() -> None:
    fresh = subprocess.run([sys.executable, str(MONITORING / "dashboard.py")], check=True,
                           capture_output=True, text=True, timeout=60).stdout
    assert fresh == (MONITORING / "grafana-dashboard.json").read_text(), (
        "regenerate: python deploy/monitoring/dashboard.py > "
        "deploy/monitoring/grafana-dashboard.json")


def test_every_alert_is_well_formed() -> None:
    names = [r["alert"] for r in rules()]
    assert len(names) == len(set(names)) >= 6
    for rule in rules():
        assert rule["expr"].strip() and rule["labels"]["severity"] in ("page", "warn"), rule
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool (Debian's prometheus package) is not installed")
def test_promtool_checks_and_unit_tests_the_rules() -> None:
    subprocess.run(["promtool", "check", "rules", "alerts.yaml"], cwd=MONITORING, check=True,
                   capture_output=True, timeout=60)
    run = subprocess.run(["promtool", "test", "rules", "alerts.test.yaml"], cwd=MONITORING,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def served(text: str) -> set[str]:
    """Every series name a /metrics page can carry, for each of its families."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names |= {family.name + suffix for suffix in HISTOGRAM_SERIES}
        names |= {sample.name for sample in family.samples}
    return names


def test_every_metric_named_in_a_panel_or_alert_is_served(
        redis_server: Any, key_prefix: str) -> None:
    services = [kind(redis_server.url, key_prefix) for kind in (Presence, Sessions, Activity)]
    presence, sessions, activity = services
    gateway = Gateway(redis_server.url, key_prefix, presence_url=presence.http,
                      sessions_url=sessions.http, activity_url=activity.http)
    names: set[str] = set()
    try:
        for process in [*services, gateway]:
            process.start()
            names |= served(process.metrics())
    finally:
        for process in [gateway, *services]:
            process.terminate()
    named = {m for text in [*(r["expr"] for r in rules()), *dashboard_expressions()]
             for m in _METRIC.findall(text)}
    assert len(named) >= 20
    missing = sorted(named - names)
    assert not missing, f"named in deploy/monitoring but served by no process: {missing}"
