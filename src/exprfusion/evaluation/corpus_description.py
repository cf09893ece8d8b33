"""Corpus statistics from the manifest: class distribution, missing faces, fps mix and frame counts per split."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from exprfusion.core.labels import (
    AFFWILD2_TRAIN_COUNTS,
    AFFWILD2_VALIDATION_COUNTS,
    CLASS_NAMES,
    SPLITS,
    class_shares,
)
from exprfusion.data.corpus import COUNT_COLUMNS, Corpus
from exprfusion.evaluation.plots import new_figure, save_figure

REFERENCE_SHARES: dict[str, tuple[float, ...]] = {
    "train": class_shares(AFFWILD2_TRAIN_COUNTS),
    "validation": class_shares(AFFWILD2_VALIDATION_COUNTS),
}


def _present_splits(manifest: pd.DataFrame) -> list[str]:
    return [split for split in SPLITS if (manifest["split"] == split).any()]


def split_summary(corpus: Corpus) -> pd.DataFrame:
    """Per split: videos, frames, labelled frames, missing-face rate (over labelled frames), audio-missing rate."""
    manifest = corpus.manifest
    rows = []
    for split in _present_splits(manifest):
        part = manifest[manifest["split"] == split]
        frames = int(part["n_frames"].sum())
        labelled = int(part["n_labelled"].sum())
        rows.append(
            {
                "split": split,
                "videos": len(part),
                "frames": frames,
                "labelled_frames": labelled,
                "ignored_frames": frames - labelled,
                "missing_face_rate": float(part["n_labelled_no_face"].sum() / labelled) if labelled else 0.0,
                "missing_face_rate_all_frames": float(((1 - part["face_rate"]) * part["n_frames"]).sum() / frames),
                "worst_video_missing_face_rate": float((1 - part["face_rate"]).max()),
                "missing_audio_rate": float(((1 - part["audio_rate"]) * part["n_frames"]).sum() / frames),
                "two_person_videos": int(part["video"].str.endswith(("_left", "_right")).sum()),
            }
        )
    return pd.DataFrame(rows).set_index("split")


def class_distribution(corpus: Corpus) -> pd.DataFrame:
    """Share of labelled frames per class and split, beside the Aff-Wild2 reference share where one exists."""
    manifest = corpus.manifest
    table = pd.DataFrame(index=list(CLASS_NAMES))
    for split in _present_splits(manifest):
        counts = manifest.loc[manifest["split"] == split, list(COUNT_COLUMNS)].sum().to_numpy()
        if counts.sum() == 0:
            continue
        table[split] = counts / counts.sum()
        if split in REFERENCE_SHARES:
            table[f"{split}_affwild2"] = REFERENCE_SHARES[split]
    table.index.name = "class"
    return table


def fps_mix(corpus: Corpus) -> pd.DataFrame:
    """Number of videos per fps value and split."""
    manifest = corpus.manifest
    mix = manifest.groupby(["fps", "split"]).size().unstack("split", fill_value=0)
    return mix.reindex(columns=_present_splits(manifest), fill_value=0).sort_index(ascending=False)


def plot_class_distribution(corpus: Corpus, path: str | Path) -> Path:
    """Write a PNG bar chart of the per-split class shares next to the Aff-Wild2 reference shares."""
    table = class_distribution(corpus)
    figure = new_figure(9, 4.5)
    axes = figure.add_subplot()
    table.mul(100).plot.bar(ax=axes, width=0.8)
    axes.set_ylabel("share of labelled frames (%)")
    axes.set_title(f"Class distribution — {corpus.root.name}")
    axes.tick_params(axis="x", rotation=0)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return save_figure(figure, path)
