"""The ablation figure: one group of bars per run, and a clear error when there is nothing to draw."""

from __future__ import annotations

import pytest

from exprfusion.plots import plot_ablation


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
