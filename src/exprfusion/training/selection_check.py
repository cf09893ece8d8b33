"""Say when a selection split is too small to choose: between a search's trials, or between normalisations.

A search keeps the trial with the best selection macro-F1, and ``normalisation: auto`` the candidate whose baseline
scores best on the same split. On a holdout of a few videos both choices can rest on noise: every trial scoring
0.000, or a lead smaller than the score's own sampling error. The sampling error is the 95 % bootstrap interval over
the split's videos (:mod:`exprfusion.evaluation.uncertainty`): the best trial's selection score carries it
(``macro_f1_ci``), and the normalisation choice draws a paired interval of its two candidates' difference.

The rules, each a warning naming the split's size and the scores (the choice is still made, as before):

* the trials all scored the same (every score 0, say): nothing told them apart;
* the best trial leads the next by less than half its interval's width: inside the interval;
* the paired interval of the normalisations' difference contains 0, or both scored the same.

The search prints the warnings and ``best.json`` records them (``selection_warnings``, with the split's size in
``selection_split``); the train stage prints them again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exprfusion.data.split_tensors import SplitData, holdout_split, training_splits

ADVICE = "add videos to it (train.holdout_fraction, more training media) or select on validation"


@dataclass(frozen=True)
class SplitSize:
    """How much a selection split holds: videos and labelled frames."""

    name: str  # "holdout" or "validation"
    videos: int
    labelled_frames: int

    @classmethod
    def of(cls, name: str, data: SplitData) -> SplitSize:
        """The size of ``data``, a split named ``name``."""
        labelled = int((data.labels.cpu().numpy() >= 0).sum())
        return cls(name, len(data.videos), labelled)

    def describe(self) -> str:
        """``the holdout (2 videos, 410 labelled frames)``."""
        return f"the {self.name} ({self.videos} videos, {self.labelled_frames} labelled frames)"


def trials_warning(scores: Sequence[float], interval: Sequence[float] | None, size: SplitSize) -> str | None:
    """A warning when the selection split cannot tell the trials apart, else None.

    Args:
        scores: every finished trial's selection macro-F1.
        interval: the best trial's 95 % interval ``[lo, hi]`` (None: not known; only equal scores are caught).
        size: the selection split.
    """
    ordered = sorted((float(score) for score in scores if np.isfinite(score)), reverse=True)
    if len(ordered) < 2:
        return None
    shown = ", ".join(f"{score:.4f}" for score in ordered)
    if ordered[0] == ordered[-1]:
        reason = f"gave every one of the {len(ordered)} trials the same score, {ordered[0]:.4f}"
    elif interval is not None and ordered[0] - ordered[1] < (interval[1] - interval[0]) / 2:
        reason = (
            f"puts the best trial {ordered[0] - ordered[1]:.4f} ahead of the next, inside its 95 % interval "
            f"[{interval[0]:.4f}, {interval[1]:.4f}]"
        )
    else:
        return None
    return f"selection cannot choose between the trials: {size.describe()} {reason} (scores {shown}); {ADVICE}"


def normalisation_warning(scores: dict[str, float], difference: Sequence[float], size: SplitSize) -> str | None:
    """A warning when the paired 95 % interval of the candidates' difference contains 0, else None."""
    shown = ", ".join(f"{name} {score:.4f}" for name, score in scores.items())
    if len(scores) < 2 or not difference[0] <= 0.0 <= difference[1]:
        return None
    return (
        f"selection cannot choose the normalisation: on {size.describe()} the baselines score {shown}, a difference "
        f"whose 95 % interval [{difference[0]:.4f}, {difference[1]:.4f}] contains 0; {ADVICE}"
    )


def selection_split_size(corpus_root: str | Path, selection: str, holdout_fraction: float) -> SplitSize:
    """The size of the split a training run selects on: the media-disjoint holdout of the train split (the one
    :func:`~exprfusion.data.split_tensors.holdout_split` makes), or the validation split."""
    train, validation = training_splits(corpus_root)
    if selection == "holdout":
        return SplitSize.of("holdout", holdout_split(train, holdout_fraction)[1])
    return SplitSize.of("validation", validation)


def search_warnings(
    corpus_root: str | Path,
    train: dict[str, Any],
    scores: Sequence[float],
    interval: Sequence[float] | None,
    normalisation_warnings: Sequence[str] = (),
) -> tuple[list[str], SplitSize]:
    """A search's selection warnings (the normalisation's, then the trials') and the size of its selection split."""
    size = selection_split_size(corpus_root, train["selection"], train["holdout_fraction"])
    warning = trials_warning(scores, interval, size)
    return [*normalisation_warnings, *([warning] if warning else [])], size
