"""Honest model selection: early stopping on a media-disjoint slice of the training split, never on validation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from factories import make_learnable_record

from exprfusion.core.errors import InputError
from exprfusion.data.corpus_writer import CorpusWriter
from exprfusion.data.split_tensors import holdout_split, load_split, select_videos
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.training.train import train_model
from exprfusion.training.train_config import TrainConfig

MODEL = FusionConfig.paper(d_model=16, n_layers=1, n_heads=2, modality_dropout=0.1)
TRAIN = TrainConfig(epochs=3, batch_size=8, window=16, eval_stride=4, median_kernel=3, lr=3e-3, selection="holdout")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("selection") / "corpus"
    with CorpusWriter(root) as writer:
        # Five training media of 100 labelled frames: a two-person pair (pair_left, pair_right) and three singles.
        for number, name in enumerate(("pair_left", "pair_right", "a", "b", "c")):
            writer.add(make_learnable_record(name, "train", n=100, seed=number))
        writer.add(make_learnable_record("v", "validation", n=96, seed=50))
    return root


def test_the_holdout_is_media_disjoint_and_big_enough(corpus):
    train = load_split(corpus, "train")
    fit, held = holdout_split(train, 0.3)
    assert sorted(fit.videos + held.videos) == sorted(train.videos), "every video on exactly one side"
    assert not set(fit.videos) & set(held.videos)
    # The two people of one media stay on one side.
    assert ("pair_left" in held.videos) == ("pair_right" in held.videos)
    # At least 30 % of the 500 labelled frames are held out, and the fit side keeps at least one video.
    assert int((held.labels >= 0).sum()) >= 150
    assert fit.videos
    # Restacked rows are the original rows of each video.
    for number, video in enumerate(held.videos):
        original = train.video_rows(train.videos.index(video))
        torch.testing.assert_close(held.visual[held.video_rows(number)], train.visual[original])


def test_the_holdout_does_not_depend_on_the_order_of_the_videos(corpus):
    train = load_split(corpus, "train")
    reversed_train = holdout_split(select_videos(train, [4, 3, 2, 1, 0]), 0.3)
    assert sorted(reversed_train[1].videos) == sorted(holdout_split(train, 0.3)[1].videos)


def test_a_single_media_cannot_be_split(tmp_path):
    root = tmp_path / "corpus"
    with CorpusWriter(root) as writer:
        writer.add(make_learnable_record("only", "train", n=64, seed=0))
        writer.add(make_learnable_record("v", "validation", n=64, seed=1))
    with pytest.raises(InputError, match="at least two training media"):
        holdout_split(load_split(root, "train"), 0.2)


def test_holdout_selection_never_reads_the_validation_labels(corpus):
    train, validation = load_split(corpus, "train"), load_split(corpus, "validation")
    rng = np.random.default_rng(0)
    poisoned = replace(validation, labels=torch.from_numpy(rng.integers(0, 8, validation.n_frames)))
    honest = train_model(None, MODEL, TRAIN, splits=(train, validation))
    tricked = train_model(None, MODEL, TRAIN, splits=(train, poisoned))
    assert honest.best_epoch == tricked.best_epoch
    assert honest.best_metrics == tricked.best_metrics
    for name, value in honest.model.state_dict().items():
        assert torch.equal(value, tricked.model.state_dict()[name]), name
    # The validation split is still reported, and the poison shows there only.
    assert honest.validation_metrics["macro_f1"] != tricked.validation_metrics["macro_f1"]


def test_selection_on_validation_does_read_them(corpus):
    # The control: with selection on validation the poisoned labels steer the run (same seed, other scores).
    train, validation = load_split(corpus, "train"), load_split(corpus, "validation")
    rng = np.random.default_rng(0)
    poisoned = replace(validation, labels=torch.from_numpy(rng.integers(0, 8, validation.n_frames)))
    config = replace(TRAIN, selection="validation")
    honest = train_model(None, MODEL, config, splits=(train, validation))
    tricked = train_model(None, MODEL, config, splits=(train, poisoned))
    assert honest.best_metrics != tricked.best_metrics


class Interrupt(Exception):
    """Raised from a callback to stop a plain run after the epoch the refit must reproduce."""


def test_the_kept_model_is_refit_on_every_training_video_up_to_the_chosen_epoch(corpus, tmp_path):
    train, validation = load_split(corpus, "train"), load_split(corpus, "validation")
    selected = train_model(None, MODEL, replace(TRAIN, refit=False), splits=(train, validation))
    refit = train_model(None, MODEL, TRAIN, splits=(train, validation))
    assert not selected.refit and refit.refit
    assert refit.best_epoch == selected.best_epoch and refit.best_metrics == selected.best_metrics

    # The reference: the plain loop on the whole training split (same seed and schedule), stopped after the
    # chosen epoch; its checkpoint holds the weights after that epoch.
    def stop(report):
        if report.epoch == selected.best_epoch:
            raise Interrupt

    plain = replace(TRAIN, selection="validation", refit=False)
    with pytest.raises(Interrupt):
        train_model(None, MODEL, plain, splits=(train, validation), run_dir=tmp_path, callback=stop)
    reference = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["model"]
    kept = refit.model.state_dict()
    assert kept.keys() == reference.keys()
    for name, value in reference.items():
        torch.testing.assert_close(kept[name], value, msg=name)
    # The holdout's frames changed the weights: the selection run's own model is another one.
    assert not torch.equal(kept["head.4.weight"], selected.model.state_dict()["head.4.weight"])


def test_selection_on_validation_never_refits(corpus):
    train, validation = load_split(corpus, "train"), load_split(corpus, "validation")
    config = replace(TRAIN, selection="validation", refit=True)
    assert not train_model(None, MODEL, config, splits=(train, validation)).refit
