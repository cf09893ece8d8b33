"""The shipped Prometheus config and rules: ``promtool check``, and ``promtool test rules`` on planted series.

The planted counters grow at known per-minute rates on two instances; the expected drift is
:func:`exprfusion.monitoring.drift.js_distance` of the summed rates against the planted reference, the expected
missing-face
ratio a hand computation, and the alerts fire (or not) after their ``for:`` durations.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from exprfusion.core.labels import CLASS_NAMES
from exprfusion.monitoring.drift import js_distance

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
REFERENCE = np.array([0.30, 0.05, 0.05, 0.10, 0.20, 0.15, 0.10, 0.05])
NORMAL = np.array([30, 5, 5, 10, 20, 15, 10, 5])  # frames per minute per class and instance: the reference's shares
DRIFTED = np.array([2, 0, 0, 50, 3, 0, 0, 5])  # mostly class 3, three classes never predicted


def _promtool(prometheus_bin: Path, *arguments: str) -> str:
    done = subprocess.run([str(prometheus_bin / "promtool"), *arguments], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_config_and_rules_pass_promtool_check(prometheus_bin):
    _promtool(prometheus_bin, "check", "config", str(MONITORING / "prometheus.yml"))
    output = _promtool(prometheus_bin, "check", "rules", str(MONITORING / "rules.yml"), str(MONITORING / "alerts.yml"))
    assert "SUCCESS" in output


def _series(rates: np.ndarray, missing_face_rate: float) -> list[dict]:
    """Counters of two instances growing at ``rates`` frames per minute (the second at twice the first's rate)."""
    series = []
    for instance, factor in (("a:3000", 1), ("b:3000", 2)):
        target = f'job="exprfusion", instance="{instance}"'
        for name, rate, share in zip(CLASS_NAMES, rates, REFERENCE, strict=True):
            series.append(
                {
                    "series": f'exprfusion_predicted_frames_total{{class_name="{name}", {target}}}',
                    "values": f"0+{factor * int(rate)}x40",
                }
            )
            series.append(
                {
                    "series": f'exprfusion_reference_share{{class_name="{name}", {target}}}',
                    "values": f"{float(share)!r}x40",
                }
            )
        total = factor * int(rates.sum())
        series.append(
            {
                "series": f"exprfusion_missing_face_frames_total{{{target}}}",
                "values": f"0+{float(missing_face_rate * total)!r}x40",
            }
        )
        series.append({"series": f'exprfusion_requests_total{{endpoint="/predict", {target}}}', "values": "0+1x40"})
        series.append({"series": f"up{{{target}}}", "values": "1x40"})
    return series


def _close_to(expression: str, value: float) -> dict:
    """A promtool check that ``expression`` is within 1e-9 of ``value`` at 20 minutes (promtool compares exactly)."""
    return {
        "expr": f"abs({expression} - {value!r}) < bool 1e-9",
        "eval_time": "20m",
        "exp_samples": [{"labels": "{}", "value": 1}],
    }


def _case(rates: np.ndarray, missing_face_rate: float, firing: bool) -> dict:
    shares = rates / rates.sum()
    watched = 'ALERTS{alertstate="firing", alertname=~"ExprfusionPredictionDrift|ExprfusionMissingFaces"}'
    return {
        "interval": "1m",
        "input_series": _series(rates, missing_face_rate),
        "promql_expr_test": [
            _close_to("exprfusion:prediction_js_distance:5m", float(js_distance(shares, REFERENCE))),
            _close_to("exprfusion:missing_face:ratio5m", missing_face_rate),
            {
                "expr": f"count({watched}) or vector(0)",
                "eval_time": "30m",
                "exp_samples": [{"labels": "{}", "value": 2 if firing else 0}],
            },
        ],
        "alert_rule_test": [{"alertname": "ExprfusionNoTraffic", "eval_time": "30m", "exp_alerts": []}],
    }


@pytest.mark.parametrize(("rates", "missing_face_rate", "firing"), [(NORMAL, 0.25, False), (DRIFTED, 0.75, True)])
def test_recording_rules_give_the_library_drift_and_alerts_follow(
    prometheus_bin, tmp_path, rates, missing_face_rate, firing
):
    if firing:
        assert js_distance(rates / rates.sum(), REFERENCE) > 0.2  # the planted drift is over the alert's threshold
    tests = {
        "rule_files": [str(MONITORING / "rules.yml"), str(MONITORING / "alerts.yml")],
        "evaluation_interval": "1m",
        "tests": [_case(rates, missing_face_rate, firing)],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    _promtool(prometheus_bin, "test", "rules", str(tmp_path / "tests.yml"))


def test_dashboard_queries_are_promql_over_recorded_or_exported_series(prometheus_bin, tmp_path):
    dashboard = json.loads((MONITORING / "grafana" / "exprfusion.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    checked = {
        "groups": [{"name": "dashboard", "rules": [{"record": f"q{i}", "expr": e} for i, e in enumerate(expressions)]}]
    }
    (tmp_path / "dashboard_rules.yml").write_text(yaml.safe_dump(checked))
    _promtool(prometheus_bin, "check", "rules", str(tmp_path / "dashboard_rules.yml"))  # each query parses
    recorded = {rule["record"] for rule in yaml.safe_load((MONITORING / "rules.yml").read_text())["groups"][0]["rules"]}
    alerts = (MONITORING / "alerts.yml").read_text()
    used = set(re.findall(r"exprfusion:[a-z0-9_:]+", " ".join(expressions) + alerts))
    assert used <= recorded, used - recorded  # every recorded series a panel or alert reads is recorded
    exported = set(
        re.findall(
            r'name="(exprfusion_[a-z_]+)"',
            (MONITORING.parent / "src" / "exprfusion" / "service" / "metrics.py").read_text(),
        )
    )
    read = set(re.findall(r"\b(exprfusion_[a-z_]+?)(?:_bucket)?\b", " ".join(expressions) + alerts))
    assert read <= exported, read - exported  # every raw metric they read is one the service exports
