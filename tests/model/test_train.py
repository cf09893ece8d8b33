"""Training runs end to end on a tiny corpus, learns a planted signal, stops early, and resumes the same run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from factories import write_learnable_corpus, write_small_corpus

from exprfusion.core.errors import InputError
from exprfusion.data.corpus import Corpus
from exprfusion.data.split_tensors import load_split
from exprfusion.evaluation.metrics import macro_f1
from exprfusion.inference.window_logits import predict_split
from exprfusion.model.artifact import load_model, save_model
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.training.losses import inverse_frequency_weights
from exprfusion.training.train import CHECKPOINT_NAME, train_model, training_metadata
from exprfusion.training.train_config import TrainConfig

TINY_MODEL = FusionConfig.paper(d_model=16, n_layers=1, n_heads=2, dropout=0.1, modality_dropout=0.2)
# Selection on the validation split: these tests are about the training loop, whose epochs they steer by it.
TINY_TRAIN = TrainConfig(
    epochs=3,
    batch_size=4,
    window=16,
    stride=8,
    eval_stride=8,
    median_kernel=3,
    lr=3e-3,
    device="cpu",
    selection="validation",
)
# For the planted-signal corpus: 4 x 128 training frames, 60 windows of 16, 8 steps per epoch.
LEARN_TRAIN = dataclasses.replace(TINY_TRAIN, batch_size=8, epochs=5)


class Interrupt(Exception):
    """Raised from a callback to stop a run after an epoch, as a crash would."""


def stop_after(epoch: int):
    def callback(report):
        if report.epoch == epoch:
            raise Interrupt

    return callback


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("train") / "corpus"
    return write_small_corpus(root)


@pytest.fixture(scope="module")
def learnable(tmp_path_factory):
    """Labels in runs of 8 frames, all eight classes in every video, each class shifting the features."""
    return write_learnable_corpus(tmp_path_factory.mktemp("learnable") / "corpus")


def window_labels(model, data, window: int = 16) -> np.ndarray:
    """Argmax labels of the model run straight on consecutive, non-overlapping windows (no voting, no filter)."""
    n = data.n_frames
    assert n % window == 0, "the validation videos are whole multiples of the window"
    inputs = (
        data.visual.reshape(-1, window, data.visual.shape[1]),
        data.audio.reshape(-1, window, data.audio.shape[1]),
        data.face_mask.reshape(-1, window),
        data.audio_mask.reshape(-1, window),
    )
    with torch.no_grad():
        return model.eval()(*inputs).argmax(-1).reshape(n).numpy()


def test_training_reports_every_epoch_and_returns_best(corpus):
    reports = []
    result = train_model(corpus, TINY_MODEL, TINY_TRAIN, callback=reports.append)
    assert [r.epoch for r in reports] == [0, 1, 2]
    for report in reports:
        assert {"macro_f1", "accuracy", "macro_f1_voting"} <= set(report.metrics)
        assert report.train_loss > 0
    assert reports[0].lr > reports[-1].lr >= 0, "cosine decay after warm-up"
    best = max(reports, key=lambda r: r.metrics["macro_f1"])
    assert result.best_epoch == best.epoch
    assert result.best_metrics == best.metrics
    assert result.model.config.visual_dim == 8 and result.model.config.audio_dim == 6


def test_training_beats_the_untrained_model_by_at_least_0_3_macro_f1(learnable):
    """Five epochs on a planted signal lift validation macro-F1 by >= 0.3 over the same seed's untrained model.

    Chance over eight balanced classes is about 0.125; the untrained model scores near it.
    """
    validation = load_split(learnable, "validation")
    truth = validation.labels.numpy()
    untrained = train_model(learnable, TINY_MODEL, dataclasses.replace(LEARN_TRAIN, epochs=0))
    assert untrained.history == [], "epochs=0 returns the initial model"
    trained = train_model(learnable, TINY_MODEL, LEARN_TRAIN)
    before = macro_f1(truth, window_labels(untrained.model, validation))
    after = macro_f1(truth, window_labels(trained.model, validation))
    assert before < 0.25, f"the untrained model should score near chance, got {before:.3f}"
    assert after >= before + 0.3, f"macro-F1 {before:.3f} untrained, {after:.3f} trained"


def test_resume_after_an_interruption_gives_the_uninterrupted_run(learnable, tmp_path):
    """Interrupted after epoch 1 and resumed, a run ends with the very weights and history of one never stopped.

    On the planted signal the best epoch comes after the interruption, so the returned (best) weights were trained
    after the resume: a resume that restarted from scratch, or that skipped the remaining epochs, gives others.
    """
    config = dataclasses.replace(LEARN_TRAIN, epochs=4)
    straight = train_model(learnable, TINY_MODEL, config, run_dir=tmp_path / "straight")
    assert straight.best_epoch >= 2, "the set-up must keep improving after the interruption"

    with pytest.raises(Interrupt):
        train_model(learnable, TINY_MODEL, config, run_dir=tmp_path / "resumed", callback=stop_after(1))
    assert torch.load(tmp_path / "resumed" / CHECKPOINT_NAME, weights_only=False)["epoch"] == 1
    epochs_seen = []
    resumed = train_model(
        learnable, TINY_MODEL, config, run_dir=tmp_path / "resumed", callback=lambda r: epochs_seen.append(r.epoch)
    )

    assert epochs_seen == [2, 3], "the resumed run trains only the epochs after the checkpoint"
    assert resumed.best_epoch == straight.best_epoch
    assert [(r.epoch, r.train_loss, r.lr, r.metrics) for r in resumed.history] == [
        (r.epoch, r.train_loss, r.lr, r.metrics) for r in straight.history
    ]
    straight_state, resumed_state = straight.model.state_dict(), resumed.model.state_dict()
    assert straight_state.keys() == resumed_state.keys()
    for name, value in straight_state.items():
        assert torch.equal(resumed_state[name], value), name


def _checkpoint_then_resume(corpus, first: tuple, second: tuple, run_dir) -> None:
    """Checkpoint a run of ``first`` (model config, train config), then resume it in the same folder with ``second``."""
    with pytest.raises(Interrupt):
        train_model(corpus, *first, run_dir=run_dir, callback=stop_after(0))
    assert (run_dir / CHECKPOINT_NAME).is_file()
    train_model(corpus, *second, run_dir=run_dir)


def test_resume_refuses_a_checkpoint_of_another_model_config(corpus, tmp_path):
    wider = dataclasses.replace(TINY_MODEL, d_model=32, ff_dim=None)
    with pytest.raises(InputError, match=r"d_model\D*(16\D+32|32\D+16)"):
        _checkpoint_then_resume(corpus, (TINY_MODEL, TINY_TRAIN), (wider, TINY_TRAIN), tmp_path / "run")


def test_resume_refuses_a_checkpoint_of_another_training_config(corpus, tmp_path):
    longer = dataclasses.replace(TINY_TRAIN, epochs=7)
    with pytest.raises(InputError, match=r"epochs\D*(3\D+7|7\D+3)"):
        _checkpoint_then_resume(corpus, (TINY_MODEL, TINY_TRAIN), (TINY_MODEL, longer), tmp_path / "run")


def test_resume_refuses_a_checkpoint_of_another_corpus(corpus, tmp_path):
    other = write_small_corpus(tmp_path / "other", n_train=3)  # same widths, other videos
    run_dir = tmp_path / "run"
    with pytest.raises(Interrupt):
        train_model(corpus, TINY_MODEL, TINY_TRAIN, run_dir=run_dir, callback=stop_after(0))
    with pytest.raises(InputError, match="corpus"):
        train_model(other, TINY_MODEL, TINY_TRAIN, run_dir=run_dir)


@pytest.mark.parametrize("patience", [1, 2])
def test_early_stopping_after_patience_epochs_without_improvement(corpus, patience):
    """A learning rate too small to move any float32 weight keeps every epoch's score equal to epoch 0's.

    The best epoch is then 0 (only a strictly higher score replaces the best), and the loop stops before epoch e
    once e - best_epoch > patience: it runs epochs 0..patience, i.e. patience + 1 + best_epoch epochs.
    """
    config = dataclasses.replace(TINY_TRAIN, epochs=6, lr=1e-12, patience=patience)
    result = train_model(corpus, TINY_MODEL, config)
    scores = [report.metrics["macro_f1"] for report in result.history]
    assert len(set(scores)) == 1, f"scores should not move at lr=1e-12: {scores}"
    assert result.best_epoch == 0
    assert result.stopped_early
    assert len(result.history) == patience + 1 + 0
    assert len(result.history) < config.epochs


def test_no_early_stop_while_patience_is_not_exhausted(corpus):
    config = dataclasses.replace(TINY_TRAIN, epochs=3, lr=1e-12, patience=2)
    result = train_model(corpus, TINY_MODEL, config)
    assert not result.stopped_early and len(result.history) == 3


def test_inverse_frequency_weights_by_hand():
    # power 1: 1/count = 1, 1/4, -, 1/16; mean over present classes = (16 + 4 + 1) / 48 = 7/16 -> 16/7, 4/7, 0, 1/7.
    torch.testing.assert_close(
        inverse_frequency_weights([1, 4, 0, 16], power=1.0), torch.tensor([16 / 7, 4 / 7, 0.0, 1 / 7])
    )
    # power 1/2: 1, 1/2, -, 1/4; mean = 7/12 -> 12/7, 6/7, 0, 3/7.
    torch.testing.assert_close(
        inverse_frequency_weights([1, 4, 0, 16], power=0.5), torch.tensor([12 / 7, 6 / 7, 0.0, 3 / 7])
    )


def test_class_weight_power_changes_what_one_epoch_learns(corpus):
    """With unbalanced training labels, class_weight_power=1 weights the loss, so the weights after one epoch differ.

    Two unweighted runs are compared first: training is deterministic, so any difference comes from the weights.
    """
    train_labels = load_split(corpus, "train").labels.numpy()
    counts = np.bincount(train_labels[train_labels >= 0], minlength=8)
    assert counts.min() > 0 and counts.max() > counts.min(), "the set-up needs every class, unbalanced"
    config = dataclasses.replace(TINY_TRAIN, epochs=1, batch_size=64)
    unweighted = [train_model(corpus, TINY_MODEL, config).model.state_dict() for _ in range(2)]
    weighted = train_model(corpus, TINY_MODEL, dataclasses.replace(config, class_weight_power=1.0)).model.state_dict()
    assert all(torch.equal(unweighted[0][k], unweighted[1][k]) for k in unweighted[0])
    assert all(torch.isfinite(v).all() for v in weighted.values() if v.is_floating_point())
    assert any(not torch.equal(weighted[k], unweighted[0][k]) for k in weighted)


def test_artifact_round_trip(corpus, tmp_path):
    result = train_model(corpus, TINY_MODEL, dataclasses.replace(TINY_TRAIN, epochs=1))
    path = save_model(tmp_path / "model.pt", result.model, TINY_TRAIN.inference(), {"macro_f1": 0.5})
    model, inference, metadata = load_model(path)
    assert inference == TINY_TRAIN.inference() and metadata == {"macro_f1": 0.5}
    data = load_split(corpus, "validation")
    batch = (data.visual[None, :16], data.audio[None, :16], data.face_mask[None, :16], data.audio_mask[None, :16])
    torch.testing.assert_close(model(*batch), result.model(*batch))


def test_invalid_artifact_is_a_clear_error(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not an exprfusion model file"):
        load_model(bad)


def test_faces_masked_in_bursts(corpus):
    data = load_split(corpus, "validation")
    faces = int(data.face_mask.sum())
    half = data.with_faces_masked(0.5, seed=1, burst=5)
    hidden = faces - int(half.face_mask.sum())
    assert 0.5 * faces <= hidden <= 0.5 * faces + 5
    assert not (half.face_mask & ~data.face_mask).any(), "masking never adds faces"
    assert not data.with_faces_masked(1.0).face_mask.any()
    assert torch.equal(data.with_faces_masked(0.0).face_mask, data.face_mask)


def test_prediction_prior_is_the_share_of_each_class_the_model_predicts_on_validation(corpus):
    """The drift reference: the best model's served labels on the validation split, counted per class by hand."""
    result = train_model(corpus, TINY_MODEL, TINY_TRAIN)
    labels = predict_split(result.model, load_split(corpus, "validation"), TINY_TRAIN.inference()).labels
    expected = [float(np.sum(labels == c)) / labels.size for c in range(8)]
    assert result.prediction_prior == pytest.approx(expected)
    assert sum(result.prediction_prior) == pytest.approx(1.0)
    metadata = training_metadata(result, TINY_TRAIN, Corpus(corpus))
    assert metadata["prediction_prior"] == result.prediction_prior
    assert metadata["extractor"] is None, "a synthetic corpus records no extractor"
