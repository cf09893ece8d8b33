"""The headline scores of an evaluation: what ``metrics.json`` holds and ``dvc metrics show`` compares.

The whole evaluation report (every score with its interval, per class, robustness, the baseline block, settings and
labels) goes to ``evaluation.json``; ``metrics.json`` keeps the few numbers a user compares across runs, so DVC's
metrics table stays readable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _interval_bound(report: Mapping[str, Any], key: str, side: int) -> float | None:
    interval = report.get(f"{key}_ci")
    return None if interval is None else float(interval[side])


def headline_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """The scores a user compares across runs (``metrics.json``, DVC's metrics) from the whole evaluation report.

    ``macro_f1`` (voting + median, the served pipeline) and its 95 % interval ``macro_f1_lo``/``_hi``, ``accuracy``,
    ``single_pass`` (one window per frame, no voting or filter), ``robustness_auc`` (mean macro-F1 over the hidden-face
    shares), ``baseline`` (the reference baseline's macro-F1) and ``margin`` over it with its paired interval.
    Settings, labels, per-class scores and every other interval stay in the report (``evaluation.json``).
    """
    headline: dict[str, float | None] = {
        "macro_f1": report["macro_f1"],
        "macro_f1_lo": _interval_bound(report, "macro_f1", 0),
        "macro_f1_hi": _interval_bound(report, "macro_f1", 1),
        "accuracy": report["accuracy"],
        "single_pass": report.get("macro_f1_frame"),
        "robustness_auc": report.get("robustness_auc"),
    }
    baseline = report.get("baseline")
    if baseline:
        headline["baseline"] = baseline["reference_macro_f1"]
        headline["margin"] = baseline["margin"]
        headline["margin_lo"] = _interval_bound(baseline, "margin", 0)
        headline["margin_hi"] = _interval_bound(baseline, "margin", 1)
    return {key: round(float(value), 4) for key, value in headline.items() if value is not None}
