"""When a selection split cannot choose: the rules by hand, and the normalisation choice's paired interval."""

from __future__ import annotations

import numpy as np
import torch
from factories import make_record

from exprfusion.data.corpus_writer import CorpusWriter
from exprfusion.data.split_tensors import load_split
from exprfusion.training.normalisation_choice import choose_normalisation
from exprfusion.training.selection_check import SplitSize, normalisation_warning, trials_warning

HOLDOUT = SplitSize("holdout", 2, 410)


def test_equal_trial_scores_are_named_with_the_holdout_size():
    warning = trials_warning([0.0, 0.0, 0.0], [0.0, 0.0], HOLDOUT)
    assert warning is not None
    assert "the holdout (2 videos, 410 labelled frames)" in warning and "same score, 0.0000" in warning


def test_a_lead_inside_the_interval_warns_and_one_outside_does_not():
    # The best trial, 0.30, leads the next by 0.02; its interval [0.20, 0.40] is 0.10 each side.
    warning = trials_warning([0.28, 0.30, 0.10], [0.20, 0.40], HOLDOUT)
    assert warning is not None and "0.0200 ahead of the next" in warning and "0.3000, 0.2800, 0.1000" in warning
    # Control: a lead of 0.15 is outside the same interval's half-width.
    assert trials_warning([0.15, 0.30], [0.20, 0.40], HOLDOUT) is None
    assert trials_warning([0.30], [0.20, 0.40], HOLDOUT) is None  # one trial: nothing to choose


def test_normalisation_difference_interval_containing_zero_warns():
    scores = {"robust": 0.0, "video": 0.029}
    warning = normalisation_warning(scores, [-0.06, 0.01], HOLDOUT)
    assert warning is not None and "robust 0.0000, video 0.0290" in warning and "[-0.0600, 0.0100]" in warning
    assert normalisation_warning(scores, [-0.06, -0.01], HOLDOUT) is None  # control: 0 outside the interval


def test_the_normalisation_choice_on_two_videos_carries_its_paired_interval(tmp_path):
    """On a 2-video selection split the paired bootstrap interval is computed over those 2 videos and recorded."""
    with CorpusWriter(tmp_path / "corpus") as writer:
        for i in range(4):
            writer.add(make_record(f"t{i}", "train", n=60, seed=i))
        for i in range(2):
            writer.add(make_record(f"v{i}", "validation", n=50, seed=10 + i))
    torch.manual_seed(0)
    fit, select = load_split(tmp_path / "corpus", "train"), load_split(tmp_path / "corpus", "validation")
    choice = choose_normalisation(fit, select, split_name="validation")
    lo, hi = choice.difference_ci
    assert lo <= hi and set(choice.scores) == {"robust", "video"}
    assert np.isfinite([lo, hi]).all()
    assert bool(choice.warnings) == (lo <= 0.0 <= hi)  # the warning follows the interval
    labelled = int((select.labels.numpy() >= 0).sum())
    expected = normalisation_warning(choice.scores, choice.difference_ci, SplitSize("validation", 2, labelled))
    assert choice.warnings == ([expected] if expected else [])
