"""Evaluate a model artefact on a corpus split: metrics.json, DVC plot data and PNG plots.

The scores come from :mod:`exprfusion.scoring` (the served pipeline, voting alone, a single pass, per class, and
robustness with a growing share of the face frames hidden); ``robustness_auc``, the mean over those fractions, is
one number to compare models by. This module adds the settings, the plots and the files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from exprfusion.artifact import load_model
from exprfusion.atomic import write_json
from exprfusion.corpus import Corpus
from exprfusion.data import SplitData, load_split
from exprfusion.devices import resolve_device
from exprfusion.errors import InputError
from exprfusion.inference import INFERENCE_BATCH_SIZE
from exprfusion.metrics import evaluate_predictions
from exprfusion.plots import plot_confusion_matrix, plot_per_class_f1, plot_robustness, plot_timeline
from exprfusion.predict import check_feature_widths
from exprfusion.scoring import check_fractions, robustness_scores, score_split
from exprfusion.strict_dicts import dataclass_from_dict


@dataclass
class EvaluateConfig:
    """What an evaluation scores and draws (the ``evaluate`` section of params.yaml)."""

    split: str = "validation"
    # Shares of the face frames hidden in bursts for the robustness curve.
    robustness_fractions: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    seed: int = 0  # seed of the hidden bursts
    timeline_videos: int = 3  # timeline plots for this many of the longest videos
    batch_size: int = INFERENCE_BATCH_SIZE
    device: str = "auto"

    def __post_init__(self) -> None:
        self.robustness_fractions = check_fractions(self.robustness_fractions)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], path: str = "evaluate") -> EvaluateConfig:
        """Build from a dict; unknown keys are an error naming them by dotted ``path``."""
        return dataclass_from_dict(cls, values, "evaluate settings", path=path)


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


def evaluate_model(
    model_path: str | os.PathLike[str],
    corpus: Corpus | str | os.PathLike[str],
    *,
    metrics_path: str | os.PathLike[str],
    plots_dir: str | os.PathLike[str],
    config: EvaluateConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Score a model artefact on a labelled corpus split; write the metrics, the plot data and the plots.

    Writes into ``plots_dir`` ``robustness.json`` and ``per_class_f1.json`` (DVC plot data),
    ``confusion_matrix.png``, ``per_class_f1.png``, ``robustness.png`` and ``timeline_<video>.png`` for the
    ``timeline_videos`` longest videos; then ``metrics_path`` (last, atomically). Nothing is written when the
    model, the corpus or the split is unusable.

    Args:
        model_path: the artefact written by ``exprfusion train`` (its inference settings are used).
        corpus: the corpus to read the split from.
        metrics_path: where ``metrics.json`` goes.
        plots_dir: folder for the plot data and images (created).
        config: split, robustness fractions and seed, timelines, batch size, device (default: ``EvaluateConfig()``).
        progress: optional ``callback(done, total)``.

    Returns:
        The metrics written to ``metrics_path``.
    """
    config = config or EvaluateConfig()
    fractions = config.robustness_fractions
    total_steps = 2 + len(fractions)
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
    if progress:
        progress(0, total_steps)

    scores = score_split(model, data, inference, single_pass=True, batch_size=config.batch_size)
    advance()
    robustness = robustness_scores(
        model,
        data,
        inference,
        fractions,
        seed=config.seed,
        unmasked=scores,
        batch_size=config.batch_size,
        on_fraction=advance,
    )
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

    plots_dir = Path(plots_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    plot_confusion_matrix(scores.confusion, plots_dir / "confusion_matrix.png")
    plot_per_class_f1(metrics["per_class_f1"], plots_dir / "per_class_f1.png")
    plot_robustness(fractions, list(robustness.values()), plots_dir / "robustness.png")
    metrics["timeline_videos"] = _write_timelines(data, scores.prediction.labels, plots_dir, config.timeline_videos)
    write_json(
        plots_dir / "robustness.json",
        [
            {"missing_face_fraction": float(f), "macro_f1": v}
            for f, v in zip(fractions, robustness.values(), strict=True)
        ],
    )
    per_class = [{"class": name, "f1": v} for name, v in metrics["per_class_f1"].items()]
    write_json(plots_dir / "per_class_f1.json", per_class)
    Path(metrics_path).parent.mkdir(parents=True, exist_ok=True)
    write_json(metrics_path, metrics)
    advance()
    return metrics
