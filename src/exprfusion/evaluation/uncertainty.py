"""95 % bootstrap intervals over videos for every score an evaluation reports.

Method: the frames of one video are not independent (one face, one recording, labels that hold for seconds), so the
unit resampled is the video. A resample draws as many videos as the split holds, uniformly with replacement; its
score is computed exactly as the point estimate is (:mod:`exprfusion.evaluation.metrics`: macro-F1 over the 8
classes on all the labelled frames of the drawn videos pooled, a video drawn twice counting twice). The interval is
the percentile interval: the 2.5th and 97.5th percentiles of the ``RESAMPLES`` resampled scores (NumPy's default
linear interpolation between order statistics).

Every score of one evaluation is computed on the same resamples, drawn once from the evaluation's ``seed``. A
difference of two scores (the model's margin over its baseline, the audio floor) is therefore a paired bootstrap:
each resample's difference is taken on the same videos, which cancels what the two share (the hard videos both get
wrong) and gives a narrower, honest interval for the difference.

Vectorised: each video's confusion matrix is counted once (videos × 8 × 8); a resample's pooled confusion matrix is
the sum of those matrices weighted by how many times each video was drawn, so all resamples cost one matrix product
``counts (resamples × videos) @ confusions (videos × 64)``.

What :func:`add_intervals` writes beside each score of ``metrics.json`` (each interval a ``[lo, hi]`` list):
``macro_f1_ci``, ``accuracy_ci``, ``macro_f1_voting_ci``, ``macro_f1_frame_ci``, ``per_class_f1_ci`` (class →
interval), ``robustness_ci`` (fraction → interval), ``robustness_auc_ci`` and, in the ``baseline`` block,
``visual_ci``, ``audio_ci``, ``both_ci``, ``reference_macro_f1_ci``, ``margin_ci`` and ``audio_floor_margin_ci``;
``uncertainty`` records the method, the number of resamples and videos, the level and the seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from exprfusion.core.labels import CLASS_NAMES, IGNORE_LABEL, NUM_CLASSES
from exprfusion.evaluation.baseline import MODALITIES

RESAMPLES = 1000  # bootstrap resamples of the videos
LEVEL = 0.95  # coverage of the percentile interval
METHOD = "percentile bootstrap over videos"


def video_of_frames(lengths: np.ndarray) -> np.ndarray:
    """Video number of every frame of a split stacked video after video (``lengths`` frames each)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    return np.repeat(np.arange(lengths.size), lengths)


def draw_videos(n_videos: int, resamples: int, seed: int) -> np.ndarray:
    """``(resamples, n_videos)`` video numbers: each row draws ``n_videos`` videos uniformly with replacement."""
    if n_videos < 1 or resamples < 1:
        raise ValueError(f"a bootstrap needs at least one video and one resample, got {n_videos} and {resamples}")
    return np.random.default_rng(seed).integers(0, n_videos, size=(resamples, n_videos))


def draw_counts(draws: np.ndarray, n_videos: int) -> np.ndarray:
    """``(resamples, n_videos)`` int64: how many times each resample (row of ``draws``) drew each video."""
    resamples = draws.shape[0]
    flat = (draws + np.arange(resamples)[:, None] * n_videos).ravel()
    return np.bincount(flat, minlength=resamples * n_videos).reshape(resamples, n_videos)


def video_confusions(truth: np.ndarray, labels: np.ndarray, video: np.ndarray, n_videos: int) -> np.ndarray:
    """int64 ``(n_videos, 8, 8)``: each video's confusion matrix over its labelled frames (row = true class)."""
    truth = np.asarray(truth, dtype=np.int64).ravel()
    labels = np.asarray(labels, dtype=np.int64).ravel()
    if not truth.shape == labels.shape == video.shape:
        raise ValueError(f"truth, labels and video numbers differ in length: {truth.size}, {labels.size}, {video.size}")
    labelled = truth != IGNORE_LABEL
    truth, labels, video = truth[labelled], labels[labelled], video[labelled]
    for name, values in (("truth", truth), ("labels", labels)):
        if values.size and (values.min() < 0 or values.max() >= NUM_CLASSES):
            raise ValueError(f"{name} holds classes outside 0..{NUM_CLASSES - 1} at labelled frames")
    cells = NUM_CLASSES * NUM_CLASSES
    flat = video * cells + truth * NUM_CLASSES + labels
    return np.bincount(flat, minlength=n_videos * cells).reshape(n_videos, NUM_CLASSES, NUM_CLASSES)


def pooled_confusions(confusions: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``(resamples, 8, 8)``: each resample's confusion matrix, the per-video ones weighted by ``counts``."""
    n_videos = confusions.shape[0]
    return (counts @ confusions.reshape(n_videos, -1)).reshape(-1, NUM_CLASSES, NUM_CLASSES)


def per_class_f1(confusions: np.ndarray) -> np.ndarray:
    """``(..., 8)`` F1 of each class from confusion matrices ``(..., 8, 8)``; 0 for a class absent from both truth
    and prediction (``zero_division=0``), as :func:`exprfusion.evaluation.metrics.per_class_f1`."""
    confusions = np.asarray(confusions, dtype=np.float64)
    hits = np.diagonal(confusions, axis1=-2, axis2=-1)
    # 2·tp + fp + fn = (frames of the class) + (frames predicted as the class)
    denominator = confusions.sum(axis=-1) + confusions.sum(axis=-2)
    return np.divide(2 * hits, denominator, out=np.zeros_like(hits), where=denominator > 0)


def macro_f1(confusions: np.ndarray) -> np.ndarray:
    """``(...)`` macro-F1 over the 8 classes from confusion matrices ``(..., 8, 8)`` (0 with no labelled frame)."""
    return per_class_f1(confusions).mean(axis=-1)


def accuracy(confusions: np.ndarray) -> np.ndarray:
    """``(...)`` share of the frames on the diagonal (0 with no labelled frame)."""
    confusions = np.asarray(confusions, dtype=np.float64)
    total = confusions.sum(axis=(-2, -1))
    hits = np.trace(confusions, axis1=-2, axis2=-1)
    return np.divide(hits, total, out=np.zeros_like(total), where=total > 0)


def percentile_interval(samples: np.ndarray, level: float = LEVEL) -> list[float]:
    """``[lo, hi]``: the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of ``samples`` (linear)."""
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(np.asarray(samples, dtype=np.float64), [tail, 100 - tail])
    return [float(lo), float(hi)]


class VideoBootstrap:
    """One split's video resamples, drawn once and shared by every score scored on them (paired differences).

    Args:
        truth: the split's labels per frame (``-1``: unlabelled).
        lengths: frames of each video, in the order the frames are stacked.
        resamples: how many resamples.
        seed: seed of the draws.
        level: coverage of the intervals.
    """

    def __init__(
        self, truth: np.ndarray, lengths: np.ndarray, *, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL
    ) -> None:
        self.truth = np.asarray(truth, dtype=np.int64).ravel()
        self.video = video_of_frames(lengths)
        if self.video.size != self.truth.size:
            raise ValueError(f"the videos hold {self.video.size} frames, the truth {self.truth.size}")
        self.n_videos = int(np.asarray(lengths).size)
        self.seed, self.level = int(seed), float(level)
        self.draws = draw_videos(self.n_videos, resamples, self.seed)
        self.counts = draw_counts(self.draws, self.n_videos)

    def confusions(self, labels: np.ndarray) -> np.ndarray:
        """``(resamples, 8, 8)``: the confusion matrix of ``labels`` (per frame) on each resample."""
        return pooled_confusions(video_confusions(self.truth, labels, self.video, self.n_videos), self.counts)

    def macro_f1(self, labels: np.ndarray) -> np.ndarray:
        """``(resamples,)``: the macro-F1 of ``labels`` on each resample."""
        return macro_f1(self.confusions(labels))

    def interval(self, samples: np.ndarray) -> list[float]:
        """The percentile interval of resampled ``samples`` at this bootstrap's level."""
        return percentile_interval(samples, self.level)

    def describe(self) -> dict[str, Any]:
        """The ``uncertainty`` block of ``metrics.json``."""
        return {
            "method": METHOD,
            "resamples": int(self.draws.shape[0]),
            "videos": self.n_videos,
            "level": self.level,
            "seed": self.seed,
        }


def macro_f1_interval(truth: np.ndarray, labels: np.ndarray, lengths: np.ndarray, seed: int = 0) -> list[float]:
    """The 95 % interval of the macro-F1 of ``labels`` on one split (videos of ``lengths`` frames, stacked), drawn as
    an evaluation draws it: what training puts beside each epoch's selection score (``macro_f1_ci``)."""
    bootstrap = VideoBootstrap(truth, lengths, seed=seed)
    return bootstrap.interval(bootstrap.macro_f1(labels))


def _beside(values: Mapping[str, Any], intervals: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with each ``<key>_ci`` of ``intervals`` placed right after ``<key>`` (at the end without one)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        out[key] = value
        if f"{key}_ci" in intervals:
            out[f"{key}_ci"] = intervals[f"{key}_ci"]
    out.update({key: value for key, value in intervals.items() if key not in out})
    return out


def add_intervals(
    metrics: Mapping[str, Any],
    bootstrap: VideoBootstrap,
    model: Mapping[str, np.ndarray],
    robustness: Mapping[str, np.ndarray],
    baselines: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """``metrics`` (as :func:`exprfusion.evaluation.evaluate.evaluate_model` builds it) with every interval added.

    Args:
        metrics: the point estimates; its ``baseline`` block (if any) names the baseline compared with.
        bootstrap: the resamples of the evaluated split.
        model: labels per frame of the model's scores: ``macro_f1`` (served, also used for ``accuracy`` and
            ``per_class_f1``), ``macro_f1_voting`` and, if scored, ``macro_f1_frame``.
        robustness: the served labels per robustness fraction, keyed as ``metrics["robustness"]``.
        baselines: the labels of each baseline (``visual``, ``audio``, ``both``), when the baseline is scored.

    Returns:
        A new dict: the keys listed in the module docstring beside their scores, and ``uncertainty``.
    """
    interval = bootstrap.interval
    served = bootstrap.confusions(model["macro_f1"])
    served_f1 = macro_f1(served)
    added: dict[str, Any] = {"macro_f1_ci": interval(served_f1), "accuracy_ci": interval(accuracy(served))}
    for key in ("macro_f1_voting", "macro_f1_frame"):
        if key in model and key in metrics:
            added[f"{key}_ci"] = interval(bootstrap.macro_f1(model[key]))
    classes = per_class_f1(served)
    added["per_class_f1_ci"] = {name: interval(classes[:, i]) for i, name in enumerate(CLASS_NAMES)}
    curve = {fraction: bootstrap.macro_f1(labels) for fraction, labels in robustness.items()}
    added["robustness_ci"] = {fraction: interval(samples) for fraction, samples in curve.items()}
    added["robustness_auc_ci"] = interval(np.mean(list(curve.values()), axis=0))
    out = _beside(metrics, added)
    if baselines is not None and "baseline" in metrics:
        out["baseline"] = _baseline_intervals(metrics["baseline"], bootstrap, served_f1, curve, baselines)
    out["uncertainty"] = bootstrap.describe()
    return out


def _baseline_intervals(
    report: Mapping[str, Any],
    bootstrap: VideoBootstrap,
    served_f1: np.ndarray,
    curve: Mapping[str, np.ndarray],
    baselines: Mapping[str, np.ndarray],
) -> dict[str, Any]:
    """The ``baseline`` block with the interval of each baseline and the paired intervals of the margins."""
    samples = {modality: bootstrap.macro_f1(baselines[modality]) for modality in MODALITIES}
    added = {f"{modality}_ci": bootstrap.interval(samples[modality]) for modality in MODALITIES}
    reference = samples[report["compared_with"]]
    added["reference_macro_f1_ci"] = bootstrap.interval(reference)
    added["margin_ci"] = bootstrap.interval(served_f1 - reference)
    if "audio_floor_margin" in report and "1.0" in curve:
        added["audio_floor_margin_ci"] = bootstrap.interval(curve["1.0"] - samples["audio"])
    return _beside(report, added)


def format_interval(bounds: list[float] | None, sign: str = "") -> str:
    """``[lo, hi]`` with 4 decimals (``sign="+"``: signed); ``""`` for None."""
    return "" if bounds is None else f"[{bounds[0]:{sign}.4f}, {bounds[1]:{sign}.4f}]"


def _with_interval(value: float, bounds: list[float] | None, sign: str = "") -> str:
    return f"{value:{sign}.4f} {format_interval(bounds, sign)}".rstrip()


def interval_line(metrics: Mapping[str, Any]) -> str | None:
    """One line with the model's macro-F1, its baseline's and the margin, each with its interval (None without).

    e.g. ``validation macro-F1 0.5136 [0.4712, 0.5601], both baseline 0.4190 [0.3822, 0.4590], margin +0.0946
    [+0.0501, +0.1302] (95 % percentile bootstrap over 70 videos, 1000 resamples)``.
    """
    if "macro_f1_ci" not in metrics or "uncertainty" not in metrics:
        return None
    parts = [f"{metrics.get('split', 'split')} macro-F1 {_with_interval(metrics['macro_f1'], metrics['macro_f1_ci'])}"]
    report = metrics.get("baseline")
    if report and "margin_ci" in report:
        reference = _with_interval(report["reference_macro_f1"], report.get("reference_macro_f1_ci"))
        parts.append(f"{report['compared_with']} baseline {reference}")
        parts.append(f"margin {_with_interval(report['margin'], report['margin_ci'], '+')}")
    about = metrics["uncertainty"]
    return (
        f"{', '.join(parts)} ({100 * about['level']:g} % {about['method']}: {about['videos']} videos, "
        f"{about['resamples']} resamples)"
    )
