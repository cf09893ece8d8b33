"""Evaluation plots: confusion matrix, per-class F1, robustness to missing faces, timelines and the ablation.

Drawn on a Figure with the Agg canvas, so no display or global backend is needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from exprfusion.core.labels import CLASS_NAMES, IGNORE_LABEL, NUM_CLASSES


def new_figure(width: float, height: float) -> Any:
    """A matplotlib figure drawn by the Agg canvas: writes PNGs without a display or pyplot's global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Any, path: str | Path) -> Path:
    """Write a figure as PNG, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def plot_confusion_matrix(cm: np.ndarray, path: str | Path, title: str = "Confusion matrix") -> Path:
    """Write the confusion matrix as a PNG: colours row-normalised (recall per true class), cells counts.

    ``title`` names what was scored (split and model), e.g. ``"Confusion matrix, validation, exprfusion-fusion v3"``.
    """
    cm = np.asarray(cm)
    if cm.shape != (NUM_CLASSES, NUM_CLASSES):
        raise ValueError(f"expected a {NUM_CLASSES}x{NUM_CLASSES} matrix, got shape {cm.shape}")
    row_sums = cm.sum(axis=1, keepdims=True)
    normalised = np.divide(cm, row_sums, out=np.zeros(cm.shape, dtype=np.float64), where=row_sums > 0)

    figure = new_figure(7.5, 6.5)
    axes = figure.add_subplot()
    image = axes.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, label="share of true class")
    ticks = np.arange(len(CLASS_NAMES))
    axes.set_xticks(ticks, CLASS_NAMES, rotation=45, ha="right")
    axes.set_yticks(ticks, CLASS_NAMES)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    for (true_class, predicted_class), count in np.ndenumerate(cm):
        colour = "white" if normalised[true_class, predicted_class] > 0.5 else "black"
        axes.text(predicted_class, true_class, str(count), ha="center", va="center", fontsize=8, color=colour)
    figure.tight_layout()
    return save_figure(figure, path)


def in_class_order(per_class: Mapping[str, float]) -> list[str]:
    """The class names of ``per_class`` in the official order (Neutral … Other), whatever order the mapping has."""
    unknown = sorted(set(per_class) - set(CLASS_NAMES))
    if unknown:
        raise ValueError(f"unknown class names {unknown}; known: {list(CLASS_NAMES)}")
    return [name for name in CLASS_NAMES if name in per_class]


def plot_per_class_f1(per_class: Mapping[str, float], path: str | Path, title: str = "F1 per class") -> Path:
    """Write a bar chart of per-class F1 scores in the official class order, with their macro mean dashed, as a PNG."""
    names = [name for name in CLASS_NAMES if name in per_class] + [
        name for name in per_class if name not in CLASS_NAMES
    ]
    scores = [per_class[name] for name in names]

    figure = new_figure(7.5, 4.5)
    axes = figure.add_subplot()
    bars = axes.bar(names, scores, color="tab:blue")
    axes.bar_label(bars, fmt="%.2f", fontsize=8)
    if scores:
        axes.axhline(float(np.mean(scores)), color="tab:red", linestyle="--", label="macro F1")
        axes.legend(loc="upper right")
    axes.set_ylim(0.0, 1.05)
    axes.set_ylabel("F1")
    axes.set_title(title)
    axes.tick_params(axis="x", labelrotation=45)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_robustness(
    fractions: Sequence[float], scores: Sequence[float], path: str | Path, title: str = "Robustness to missing faces"
) -> Path:
    """Write macro-F1 against the share of face frames masked as a PNG, with the mean (robustness AUC) in the title.

    Args:
        fractions: missing-face fractions in [0, 1], in increasing order.
        scores: macro-F1 at each fraction.
        path: destination PNG.
    """
    if len(fractions) != len(scores) or not len(fractions):
        raise ValueError(f"need one score per fraction, got {len(fractions)} fractions and {len(scores)} scores")
    figure = new_figure(6.5, 4.5)
    axes = figure.add_subplot()
    axes.plot(fractions, scores, marker="o", color="tab:blue", label="voting + median")
    for fraction, score in zip(fractions, scores, strict=True):
        axes.annotate(f"{score:.3f}", (fraction, score), textcoords="offset points", xytext=(0, 7), ha="center")
    axes.set_xlim(-0.05, 1.05)
    axes.set_ylim(0.0, max(1.0, max(scores) + 0.05))
    axes.set_xlabel("share of face frames masked (bursts)")
    axes.set_ylabel("macro F1")
    axes.set_title(f"{title} (mean macro F1 {np.mean(scores):.3f})")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_timeline(
    truth: np.ndarray,
    predicted: np.ndarray,
    face_mask: np.ndarray,
    fps: float,
    path: str | Path,
    title: str = "",
) -> Path:
    """Write one video's true and predicted class over time as a PNG.

    Frames whose truth is ``IGNORE_LABEL`` are shaded grey (the truth line breaks there) and frames with no face
    are shaded orange, so errors that come from missing faces stand out.

    Args:
        truth: int ``[n]`` annotated classes, -1 = ignored.
        predicted: int ``[n]`` predicted classes.
        face_mask: bool ``[n]``, True where a face was found.
        fps: frames per second (the x axis is in seconds).
        path: destination PNG.
        title: plot title (the video name, a score).
    """
    truth = np.asarray(truth, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    face_mask = np.asarray(face_mask, dtype=bool)
    if not truth.shape == predicted.shape == face_mask.shape or truth.ndim != 1:
        raise ValueError(
            f"truth, predicted and face_mask must be 1-D of one length, got {truth.shape}, {predicted.shape}, "
            f"{face_mask.shape}"
        )
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    seconds = np.arange(truth.size) / fps
    ignored = truth == IGNORE_LABEL

    figure = new_figure(12.0, 4.0)
    axes = figure.add_subplot()
    span = axes.get_xaxis_transform()  # x in data units, y across the whole axes height
    axes.fill_between(seconds, 0, 1, where=ignored, transform=span, color="0.85", step="mid", label="ignored (-1)")
    axes.fill_between(seconds, 0, 1, where=~face_mask, transform=span, color="tab:orange", alpha=0.25, step="mid",
                      label="no face")  # fmt: skip
    axes.step(seconds, np.where(ignored, np.nan, truth), where="mid", color="black", linewidth=2.5, label="truth")
    axes.step(seconds, predicted, where="mid", color="tab:blue", linewidth=1.2, label="prediction")
    axes.set_yticks(np.arange(len(CLASS_NAMES)), CLASS_NAMES)
    axes.set_ylim(-0.5, len(CLASS_NAMES) - 0.5)
    axes.set_xlim(0.0, max(float(seconds[-1]) if seconds.size else 0.0, 1.0 / fps))
    axes.set_xlabel("time (s)")
    axes.set_title(title)
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)


ABLATION_MEASURES: tuple[tuple[str, str], ...] = (
    ("macro_f1", "voting + median"),
    ("macro_f1_frame", "single pass"),
    ("missing_50", "voting + median, 50 % faces missing"),
)


def plot_ablation(rows: dict[str, dict[str, float]], path: str | Path, title: str = "Ablation") -> Path:
    """Write the ablation as grouped horizontal bars: per run, macro-F1 three ways (see ``ABLATION_MEASURES``).

    Args:
        rows: run name → its measures (at least the keys of ``ABLATION_MEASURES``), in display order (top first).
        path: destination PNG.
        title: plot title (epochs, seeds, date).
    """
    if not rows:
        raise ValueError("no ablation rows to plot")
    names = list(rows)
    positions = np.arange(len(names))[::-1]  # the first run at the top
    height = 0.8 / len(ABLATION_MEASURES)
    figure = new_figure(8.0, 1.5 + 0.6 * len(names))
    axes = figure.add_subplot()
    for i, (key, label) in enumerate(ABLATION_MEASURES):
        values = [rows[name][key] for name in names]
        offset = (i - (len(ABLATION_MEASURES) - 1) / 2) * height
        bars = axes.barh(positions - offset, values, height=height, label=label)
        axes.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    axes.set_yticks(positions, names)
    axes.set_xlim(0.0, max(max(rows[n][k] for n in names for k, _ in ABLATION_MEASURES) + 0.1, 0.5))
    axes.set_xlabel("macro F1 (validation)")
    axes.set_title(title)
    axes.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.1 - 0.3 / len(names)), ncol=len(ABLATION_MEASURES), fontsize=8
    )
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return save_figure(figure, path)
