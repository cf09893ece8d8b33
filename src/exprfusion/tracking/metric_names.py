"""The MLflow metric names the project logs: one small documented set, read the same way on every run.

Headline scores, one value each; ``<name>_lo`` and ``<name>_hi`` beside them are the 95 % percentile bootstrap
interval over videos (:mod:`exprfusion.evaluation.uncertainty`):

- ``selection_macro_f1`` (trial, search, final training): macro-F1 on the selection split (the media-disjoint holdout
  of the training split) at the epoch the run keeps. It ranks the trials, picks the epoch and decides the champion;
  the search's run carries its best trial's, the final training run the winning trial's.
- ``validation_macro_f1`` (final training only, logged by the evaluate stage; ``<split>_macro_f1`` for another
  ``evaluate.split``): the reported score of the final model. Trials never score the validation split.
- ``baseline_macro_f1`` and ``margin`` (final training, evaluate stage): the reference baseline's macro-F1 on the
  evaluated split, and the model's margin over it (a paired interval).
- ``robustness_macro_f1`` (final training, evaluate stage): the evaluated split's macro-F1 with a share of the face
  frames hidden, one step per share (step = the percent hidden), so MLflow draws the curve; ``robustness_auc`` is
  its mean.

Per-epoch values are the history (step = epoch, from 0) of one metric each: ``epoch_macro_f1`` (the selection split's
macro-F1 after that epoch), ``train_loss`` and ``lr``.

Bookkeeping: ``best_epoch`` (trial, final training: the kept epoch, from 0), ``trial_epochs`` (search: the epochs
its trials trained in all), ``normalisation_<name>`` (search: the baseline's holdout macro-F1 under each
normalisation ``auto`` weighed) and ``champion_selection_macro_f1`` (final training: the selection score of the
champion it was compared with).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exprfusion.training.epoch_report import EpochReport

SELECTION = "selection_macro_f1"
EPOCH = "epoch_macro_f1"
BASELINE = "baseline_macro_f1"
MARGIN = "margin"
ROBUSTNESS = "robustness_macro_f1"
ROBUSTNESS_AUC = "robustness_auc"
BEST_EPOCH = "best_epoch"
TRIAL_EPOCHS = "trial_epochs"
PREVIOUS_CHAMPION = "champion_selection_macro_f1"
EPOCH_HISTORY: tuple[str, ...] = (EPOCH, "train_loss", "lr")


def reported(split: str) -> str:
    """The name of the final model's reported score on ``split`` (``validation_macro_f1``)."""
    return f"{split}_macro_f1"


def with_interval(name: str, value: float, interval: Any = None) -> dict[str, float]:
    """``{name: value}``, plus ``name_lo`` and ``name_hi`` from a ``[lo, hi]`` interval when there is one."""
    out = {name: float(value)}
    if interval is not None:
        lo, hi = interval
        out.update({f"{name}_lo": float(lo), f"{name}_hi": float(hi)})
    return out


def selection_metrics(scores: Mapping[str, Any]) -> dict[str, float]:
    """``selection_macro_f1`` (with its interval when ``scores`` holds ``macro_f1_ci``) from the selection split's
    scores at the kept epoch, and ``best_epoch`` when ``scores`` names it."""
    out = with_interval(SELECTION, scores["macro_f1"], scores.get("macro_f1_ci"))
    if scores.get(BEST_EPOCH) is not None:
        out[BEST_EPOCH] = float(scores[BEST_EPOCH])
    return out


def epoch_metrics(report: EpochReport) -> dict[str, float]:
    """What one epoch adds to the run's histories: ``epoch_macro_f1``, ``train_loss`` and ``lr``."""
    return {EPOCH: float(report.metrics["macro_f1"]), "train_loss": float(report.train_loss), "lr": float(report.lr)}


def robustness_step(fraction: str | float) -> int:
    """The step of a hidden-face share on the robustness curve: the percent of the face frames hidden."""
    return round(100 * float(fraction))


def robustness_curve(report: Mapping[str, Any]) -> list[tuple[int, float]]:
    """``(step, macro-F1)`` per hidden-face share of an evaluation report's ``robustness``, in increasing share."""
    points = sorted((float(fraction), float(score)) for fraction, score in (report.get("robustness") or {}).items())
    steps = [robustness_step(fraction) for fraction, _ in points]
    if len(set(steps)) != len(steps):
        raise ValueError(f"robustness shares {[f for f, _ in points]} do not fall on distinct whole percents")
    return [(step, score) for step, (_, score) in zip(steps, points, strict=True)]


def evaluation_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """The headline scores of an evaluation report (``evaluation.json``), as the final training run logs them:
    ``<split>_macro_f1``, ``baseline_macro_f1`` and ``margin``, each with its interval, and ``robustness_auc``.
    The robustness curve is :func:`robustness_curve` (a history, not names)."""
    out = with_interval(reported(report.get("split", "validation")), report["macro_f1"], report.get("macro_f1_ci"))
    baseline = report.get("baseline")
    if baseline:
        out.update(with_interval(BASELINE, baseline["reference_macro_f1"], baseline.get("reference_macro_f1_ci")))
        out.update(with_interval(MARGIN, baseline["margin"], baseline.get("margin_ci")))
    if report.get(ROBUSTNESS_AUC) is not None:
        out[ROBUSTNESS_AUC] = float(report[ROBUSTNESS_AUC])
    return out
