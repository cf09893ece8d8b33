"""Evaluate a model artefact on a corpus split: metrics.json, DVC plot data and PNG plots.

The scores come from :mod:`exprfusion.evaluation.scoring` (the served pipeline, voting alone, a single pass, per class,
and
robustness with a growing share of the face frames hidden); ``robustness_auc``, the mean over those fractions, is
one number to compare models by. This module adds the settings, the plots and the files.

Beside the model, the evaluation scores the simple reference of :mod:`exprfusion.evaluation.baseline` (per-frame
logistic
regression, smoothed over ±15 frames), fitted on the corpus's train split and scored on the same frames. It is
written to ``metrics.json`` as ``baseline``:

- ``visual``, ``audio``, ``both``: macro-F1 of each baseline;
- ``compared_with``: the best of the three, the reference the model is compared to, and ``reference_macro_f1``, its
  macro-F1;
- ``margin``: the model's ``macro_f1`` minus ``reference_macro_f1``, and ``beats_baseline``: ``margin > 0``;
- ``audio_floor_margin`` (when the robustness fractions include 1.0): the model's macro-F1 with every face hidden
  (``robustness["1.0"]``) minus the audio baseline's, and ``reaches_audio_floor``: ``audio_floor_margin >= 0``;
- ``smoothing`` and ``train_frames``: the baseline's window (± frames) and the training frames it was fitted on.

A model that does not beat its baseline is flagged (:func:`baseline_lines`), not refused: the evaluation is a report.

Every score, the baseline's and the margins come with a 95 % bootstrap interval over videos, ``<name>_ci`` beside
``<name>`` (:mod:`exprfusion.evaluation.uncertainty`: the method, and the list of intervals), drawn from ``seed``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from exprfusion.core.atomic import write_json
from exprfusion.core.devices import resolve_device
from exprfusion.core.errors import InputError
from exprfusion.core.labels import SPLITS
from exprfusion.core.settings import settings, validate
from exprfusion.data.corpus import Corpus
from exprfusion.data.split_tensors import SplitData, load_split
from exprfusion.evaluation.baseline import (
    MODALITIES,
    BaselineConfig,
    TrainingFrames,
    baseline_labels,
    load_training_frames,
)
from exprfusion.evaluation.headline import headline_metrics
from exprfusion.evaluation.metrics import evaluate_predictions, macro_f1
from exprfusion.evaluation.plots import (
    in_class_order,
    plot_confusion_matrix,
    plot_per_class_f1,
    plot_robustness,
    plot_timeline,
)
from exprfusion.evaluation.scoring import check_fractions, robustness_labels, score_split
from exprfusion.evaluation.uncertainty import VideoBootstrap, add_intervals
from exprfusion.inference.predict import check_feature_widths
from exprfusion.inference.window_logits import INFERENCE_BATCH_SIZE
from exprfusion.model.artifact import load_model

REPORT_NAME = "evaluation.json"  # the whole evaluation report, beside metrics.json


@settings
class EvaluateConfig:
    """What an evaluation scores and draws (the ``evaluate`` section of params.yaml)."""

    split: Literal[SPLITS] = "validation"
    # Shares of the face frames hidden in bursts for the robustness curve (sorted, each once).
    robustness_fractions: Annotated[list[Annotated[float, Field(ge=0.0, le=1.0)]], Field(min_length=1)] = field(
        default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0]
    )
    seed: Annotated[int, Field(ge=0)] = 0  # seed of the hidden bursts
    timeline_videos: Annotated[int, Field(ge=0)] = 3  # timeline plots for this many of the longest videos
    batch_size: Annotated[int, Field(ge=1)] = INFERENCE_BATCH_SIZE  # windows per inference pass
    device: str = "auto"
    # The logistic-regression reference scored beside the model (exprfusion.evaluation.baseline).
    baseline: BaselineConfig = field(default_factory=BaselineConfig)

    def __post_init__(self) -> None:
        self.robustness_fractions = check_fractions(self.robustness_fractions)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], path: str = "evaluate", where: str = "") -> EvaluateConfig:
        """Build from a dict; unknown keys and bad values are an error naming them by dotted ``path``."""
        return validate(cls, dict(values), where=where, path=path)


def baseline_report(
    scores: Mapping[str, float], model_macro_f1: float, robustness: Mapping[str, float]
) -> dict[str, Any]:
    """The ``baseline`` block of ``metrics.json`` (keys in the module docstring) from the three baseline scores."""
    best = max(MODALITIES, key=lambda modality: scores[modality])
    margin = float(model_macro_f1 - scores[best])
    report: dict[str, Any] = {
        **{modality: float(scores[modality]) for modality in MODALITIES},
        "compared_with": best,
        "reference_macro_f1": float(scores[best]),
        "margin": margin,
        "beats_baseline": margin > 0,
    }
    if "1.0" in robustness:
        floor = float(robustness["1.0"] - scores["audio"])
        report.update(audio_floor_margin=floor, reaches_audio_floor=floor >= 0)
    return report


def baseline_lines(metrics: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """What to print about the baseline: a summary line with the margin (None without a baseline), and warnings.

    The warnings flag a model that does not beat its baseline, and one that, with every face hidden, scores below
    the audio baseline.
    """
    report = metrics.get("baseline")
    if not report:
        return None, []
    scores = ", ".join(f"{modality} {report[modality]:.4f}" for modality in MODALITIES)
    summary = (
        f"baseline macro-F1 ({scores}): the model's {metrics['macro_f1']:.4f} is {report['margin']:+.4f} against "
        f"the {report['compared_with']} baseline"
    )
    warnings = []
    if not report["beats_baseline"]:
        warnings.append(
            f"warning: the model does not beat the {report['compared_with']} baseline "
            f"(macro-F1 {metrics['macro_f1']:.4f} vs {report['reference_macro_f1']:.4f}, "
            f"margin {report['margin']:+.4f})"
        )
    if report.get("reaches_audio_floor") is False:
        warnings.append(
            f"warning: with every face hidden the model scores below the audio baseline "
            f"(margin {report['audio_floor_margin']:+.4f})"
        )
    return summary, warnings


def timeline_file_name(video: str) -> str:
    """``timeline_<video>.png`` with any character unsafe in a file name replaced by ``_``."""
    return f"timeline_{re.sub(r'[^A-Za-z0-9._-]', '_', video)}.png"


def _write_timelines(data: SplitData, labels: np.ndarray, out_dir: Path, count: int) -> list[str]:
    """Timeline PNGs of the ``count`` longest videos; return their names."""
    truth = data.labels.cpu().numpy()
    face_mask = data.face_mask.cpu().numpy()
    longest = [int(video) for video in np.argsort(-data.lengths, kind="stable")[: max(count, 0)]]
    for video in longest:
        rows, name = data.video_rows(video), data.videos[video]
        scores = evaluate_predictions(truth[rows], labels[rows])
        title = f"{name}: macro F1 {scores['macro_f1']:.3f}, accuracy {scores['accuracy']:.3f}"
        path = out_dir / timeline_file_name(name)
        plot_timeline(truth[rows], labels[rows], face_mask[rows], float(data.fps[video]), path, title)
    return [data.videos[video] for video in longest]


def _baseline_metrics(
    labels: Mapping[str, np.ndarray],
    truth: np.ndarray,
    training: TrainingFrames,
    config: BaselineConfig,
    metrics: Mapping[str, Any],
) -> dict[str, Any]:
    """The three baselines' ``labels`` scored on the evaluated frames, compared with the model's ``metrics``."""
    scores = {modality: macro_f1(truth, labels[modality]) for modality in MODALITIES}
    report = baseline_report(scores, metrics["macro_f1"], metrics["robustness"])
    return {**report, "smoothing": config.smoothing, "train_frames": int(training.frames["labels"].size)}


def evaluate_model(
    model_path: str | os.PathLike[str],
    corpus: Corpus | str | os.PathLike[str],
    *,
    metrics_path: str | os.PathLike[str],
    plots_dir: str | os.PathLike[str],
    report_path: str | os.PathLike[str] | None = None,
    config: EvaluateConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Score a model artefact on a labelled corpus split; write the metrics, the plot data and the plots.

    Writes into ``plots_dir`` ``robustness.json`` and ``per_class_f1.json`` (DVC plot data),
    ``confusion_matrix.png``, ``per_class_f1.png``, ``robustness.png`` and ``timeline_<video>.png`` for the
    ``timeline_videos`` longest videos; then the report and ``metrics_path`` (last, atomically). Nothing is
    written when the model, the corpus or the split is unusable, or when the baseline is asked for and the corpus
    has no labelled train frames to fit it on.

    Args:
        model_path: the artefact written by ``exprfusion train`` (its inference settings are used).
        corpus: the corpus to read the split from.
        metrics_path: where ``metrics.json`` goes: the headline scores (:func:`headline_metrics`), DVC's metrics.
        report_path: where the whole report goes (every score with its interval, per class, robustness, the
            baseline block, settings and labels); default ``evaluation.json`` beside ``metrics_path``.
        plots_dir: folder for the plot data and images (created).
        config: split, robustness fractions and seed, timelines, batch size, device and baseline (default:
            ``EvaluateConfig()``).
        progress: optional ``callback(done, total)``.

    Returns:
        The whole report (written to ``report_path``).
    """
    config = config or EvaluateConfig()
    fractions = config.robustness_fractions
    total_steps = 2 + len(fractions) + int(config.baseline.enabled)
    step = 0

    def advance() -> None:
        nonlocal step
        step += 1
        if progress:
            progress(step, total_steps)

    model, inference, _ = load_model(model_path, resolve_device(config.device))
    corpus = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
    data = load_split(corpus, config.split)
    check_feature_widths(model.config, int(data.visual.shape[1]), int(data.audio.shape[1]), str(corpus.root))
    truth = data.labels.numpy()
    if not (truth >= 0).any():
        raise InputError(
            f"{corpus.root}: the {config.split!r} split has no labelled frames to score "
            "(write test-split predictions with `exprfusion predict --submission`)"
        )
    training = load_training_frames(corpus, config.baseline) if config.baseline.enabled else None
    if progress:
        progress(0, total_steps)

    scores = score_split(model, data, inference, single_pass=True, batch_size=config.batch_size)
    advance()
    hidden = robustness_labels(
        model,
        data,
        inference,
        fractions,
        seed=config.seed,
        unmasked=scores,
        batch_size=config.batch_size,
        on_fraction=advance,
    )
    robustness = {fraction: macro_f1(truth, labels) for fraction, labels in hidden.items()}
    metrics = {
        "split": config.split,
        "n_videos": len(data.videos),
        **scores.metrics,
        "face_rate": float(data.face_mask.float().mean()),
        "robustness": robustness,
        "robustness_auc": float(np.mean(list(robustness.values()))),
        "robustness_seed": config.seed,
        "inference": inference.to_dict(),
    }
    baselines = None
    if training is not None:
        baselines = baseline_labels(training, data, config.baseline)
        metrics["baseline"] = _baseline_metrics(baselines, truth, training, config.baseline, metrics)
        advance()
    model_labels = {"macro_f1": scores.prediction.labels, "macro_f1_voting": scores.prediction.labels_voting}
    if scores.single_pass is not None:
        model_labels["macro_f1_frame"] = scores.single_pass
    bootstrap = VideoBootstrap(truth, data.lengths, seed=config.seed)
    metrics = add_intervals(metrics, bootstrap, model_labels, hidden, baselines)

    plots_dir = Path(plots_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    scored = f"{config.split}, {Path(model_path).name} (d_model {model.config.d_model}, {model.config.n_layers} layers)"
    plot_confusion_matrix(scores.confusion, plots_dir / "confusion_matrix.png", f"Confusion matrix: {scored}")
    plot_per_class_f1(metrics["per_class_f1"], plots_dir / "per_class_f1.png", f"F1 per class: {scored}")
    plot_robustness(fractions, list(robustness.values()), plots_dir / "robustness.png", f"Faces hidden: {scored}")
    metrics["timeline_videos"] = _write_timelines(data, scores.prediction.labels, plots_dir, config.timeline_videos)
    write_json(
        plots_dir / "robustness.json",
        [
            {"missing_face_fraction": float(f), "macro_f1": v}
            for f, v in zip(fractions, robustness.values(), strict=True)
        ],
    )
    per_class = [
        {"order": order, "class": name, "f1": metrics["per_class_f1"][name]}
        for order, name in enumerate(in_class_order(metrics["per_class_f1"]))
    ]
    write_json(plots_dir / "per_class_f1.json", per_class)
    report_path = Path(report_path) if report_path is not None else Path(metrics_path).with_name(REPORT_NAME)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    write_json(report_path, metrics)
    Path(metrics_path).parent.mkdir(parents=True, exist_ok=True)
    write_json(metrics_path, headline_metrics(metrics))
    advance()
    return metrics
