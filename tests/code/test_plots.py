"""The evaluation figures are PNG files, and a plot given nothing (or the wrong shape) to draw is a clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from exprfusion.core.labels import CLASS_NAMES
from exprfusion.evaluation.plots import in_class_order, plot_ablation, plot_confusion_matrix, plot_per_class_f1


def _assert_png(path: Path) -> None:
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_confusion_and_per_class_f1_plots_write_png_files(tmp_path: Path) -> None:
    cm = np.zeros((8, 8), dtype=np.int64)
    cm[0, 0], cm[0, 1], cm[1, 1], cm[4, 4], cm[4, 0] = 1, 1, 2, 1, 1
    _assert_png(plot_confusion_matrix(cm, tmp_path / "plots" / "confusion.png"))
    per_class = dict.fromkeys(CLASS_NAMES, 0.0) | {"Neutral": 0.5, "Anger": 0.8, "Happiness": 2 / 3}
    _assert_png(plot_per_class_f1(per_class, tmp_path / "per_class_f1.png"))


def test_confusion_plot_rejects_a_wrong_shape(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        plot_confusion_matrix(np.zeros((3, 3)), tmp_path / "cm.png")
    assert not (tmp_path / "cm.png").exists()


def test_ablation_plot_writes_a_png(tmp_path):
    rows = {
        "fusion": {"macro_f1": 0.50, "macro_f1_frame": 0.48, "missing_50": 0.42},
        "visual": {"macro_f1": 0.45, "macro_f1_frame": 0.44, "missing_50": 0.42},
    }
    path = plot_ablation(rows, tmp_path / "figures" / "ablation.png", title="test")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_ablation_plot_without_rows_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no ablation rows"):
        plot_ablation({}, tmp_path / "ablation.png")
    assert not (tmp_path / "ablation.png").exists()


def test_per_class_bars_follow_the_official_class_order_not_the_mapping_order():
    alphabetical = {name: 0.5 for name in sorted(CLASS_NAMES)}
    assert list(alphabetical) != list(CLASS_NAMES)  # control: the mapping's own order differs
    assert in_class_order(alphabetical) == [
        "Neutral",
        "Anger",
        "Disgust",
        "Fear",
        "Happiness",
        "Sadness",
        "Surprise",
        "Other",
    ]
    with pytest.raises(ValueError, match="unknown class names"):
        in_class_order({"Joy": 1.0})
