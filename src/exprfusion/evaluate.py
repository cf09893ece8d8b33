"""Evaluate a model artefact on a corpus split: metrics.json, DVC plot data and PNG plots.

Three views of the same model tell where its score comes from: one pass over non-overlapping windows
(``macro_f1_frame``), overlapping windows with logit soft voting (``macro_f1_voting``), and voting plus the median
filter (``macro_f1``, the served pipeline). Robustness repeats the served pipeline with a growing share of the face
frames hidden in bursts; ``robustness_auc``, the mean over those fractions, is one number to compare models by.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from exprfusion.artifact import InferenceSettings, load_model
from exprfusion.atomic import write_json
from exprfusion.corpus import Corpus
from exprfusion.data import SplitData, load_split
from exprfusion.devices import resolve_device
from exprfusion.inference import SplitPrediction, predict_split, single_pass_labels
from exprfusion.metrics import (
    confusion,
    evaluate_predictions,
    macro_f1,
    plot_confusion_matrix,
    plot_per_class_f1,
)
from exprfusion.model import FusionTransformer
from exprfusion.plots import plot_robustness, plot_timeline
from exprfusion.predict import check_feature_widths

ROBUSTNESS_FRACTIONS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
METRICS_NAME = "metrics.json"


def timeline_file_name(video: str) -> str:
    """``timeline_<video>.png`` with any character unsafe in a file name replaced by ``_``."""
    return f"timeline_{re.sub(r'[^A-Za-z0-9._-]', '_', video)}.png"


def _check_fractions(fractions: Sequence[float]) -> list[float]:
    fractions = [float(f) for f in fractions]
    if not fractions or any(not 0.0 <= f <= 1.0 for f in fractions):
        raise ValueError(f"robustness fractions must be a non-empty list of values in [0, 1], got {fractions}")
    return sorted(set(fractions))


def robustness_scores(
    model: FusionTransformer,
    data: SplitData,
    inference: InferenceSettings,
    fractions: Sequence[float],
    *,
    seed: int = 0,
    batch_size: int = 64,
    unmasked: SplitPrediction | None = None,
    on_fraction: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Macro-F1 (voting + median) with each fraction of the split's face frames masked in bursts.

    Args:
        unmasked: the prediction on the unmasked split, reused for fraction 0.
        on_fraction: called after each fraction (progress).

    Returns:
        ``{str(fraction): macro_f1}`` in increasing fraction order.
    """
    truth = data.labels.cpu().numpy()
    scores = {}
    for fraction in _check_fractions(fractions):
        if fraction == 0.0 and unmasked is not None:
            labels = unmasked.labels
        else:
            masked = data.with_faces_masked(fraction, seed)
            labels = _served_prediction(model, masked, inference, batch_size).labels
        scores[str(fraction)] = macro_f1(truth, labels)
        if on_fraction:
            on_fraction()
    return scores


def _served_prediction(
    model: FusionTransformer, data: SplitData, inference: InferenceSettings, batch_size: int
) -> SplitPrediction:
    return predict_split(model, data, inference.window, inference.stride, inference.median_kernel, batch_size)


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
    out_dir: str | os.PathLike[str],
    *,
    split: str = "validation",
    robustness_fractions: Sequence[float] = ROBUSTNESS_FRACTIONS,
    seed: int = 0,
    timeline_videos: int = 3,
    batch_size: int = 64,
    device: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Score a model artefact on a labelled corpus split and write metrics, plot data and plots into ``out_dir``.

    Writes ``metrics.json`` (last, atomically), ``robustness.json`` and ``per_class_f1.json`` (DVC plot data),
    ``confusion_matrix.png``, ``per_class_f1.png``, ``robustness.png`` and ``timeline_<video>.png`` for the
    ``timeline_videos`` longest videos.

    Args:
        model_path: the artefact written by ``exprfusion train`` (its inference settings are used).
        corpus: the corpus to read ``split`` from.
        out_dir: folder for the outputs (created).
        split: a split with annotations (``train`` or ``validation``).
        robustness_fractions: shares of face frames to mask, each in [0, 1].
        seed: seed of the face masking.
        timeline_videos: how many timeline plots to draw.
        batch_size: windows per forward pass.
        device: ``auto``, ``cpu`` or ``cuda``.
        progress: optional ``callback(done, total)``.

    Returns:
        The metrics written to ``metrics.json``.
    """
    fractions = _check_fractions(robustness_fractions)
    total_steps = 3 + len(fractions)
    step = 0

    def advance() -> None:
        nonlocal step
        step += 1
        if progress:
            progress(step, total_steps)

    model, inference, _ = load_model(model_path, resolve_device(device))
    corpus = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
    data = load_split(corpus, split)
    check_feature_widths(model.config, int(data.visual.shape[1]), int(data.audio.shape[1]), str(corpus.root))
    truth = data.labels.numpy()
    if not (truth >= 0).any():
        raise ValueError(
            f"{corpus.root}: the {split!r} split has no labelled frames to score "
            "(write test-split predictions with `exprfusion predict --submission`)"
        )
    if progress:
        progress(0, total_steps)

    served = _served_prediction(model, data, inference, batch_size)
    advance()
    frame_labels = single_pass_labels(model, data, inference.window, batch_size)
    advance()
    robustness = robustness_scores(
        model, data, inference, fractions, seed=seed, batch_size=batch_size, unmasked=served, on_fraction=advance
    )

    scores = evaluate_predictions(truth, served.labels)
    metrics = {
        "split": split,
        "n_videos": len(data.videos),
        "accuracy": scores["accuracy"],
        "macro_f1": scores["macro_f1"],
        "macro_f1_voting": macro_f1(truth, served.labels_voting),
        "macro_f1_frame": macro_f1(truth, frame_labels),
        "per_class_f1": scores["per_class_f1"],
        "n_frames": scores["n_frames"],
        "face_rate": float(data.face_mask.float().mean()),
        "robustness": robustness,
        "robustness_auc": float(np.mean(list(robustness.values()))),
        "robustness_seed": seed,
        "inference": inference.to_dict(),
    }

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_confusion_matrix(confusion(truth, served.labels), out_dir / "confusion_matrix.png")
    plot_per_class_f1(scores["per_class_f1"], out_dir / "per_class_f1.png")
    plot_robustness(fractions, list(robustness.values()), out_dir / "robustness.png")
    metrics["timeline_videos"] = _write_timelines(data, served.labels, out_dir, timeline_videos)
    write_json(
        out_dir / "robustness.json",
        [
            {"missing_face_fraction": float(f), "macro_f1": v}
            for f, v in zip(fractions, robustness.values(), strict=True)
        ],
    )
    write_json(out_dir / "per_class_f1.json", [{"class": name, "f1": v} for name, v in scores["per_class_f1"].items()])
    write_json(out_dir / METRICS_NAME, metrics)
    advance()
    return metrics
