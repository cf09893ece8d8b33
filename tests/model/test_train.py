"""Training runs end to end on a tiny corpus; a resumed run continues the same run."""

from __future__ import annotations

import pytest
import torch
from factories import write_small_corpus

from exprfusion.artifact import load_model, save_model
from exprfusion.data import load_split
from exprfusion.model import FusionConfig
from exprfusion.train import CHECKPOINT_NAME, TrainConfig, train_model

TINY_MODEL = FusionConfig(d_model=16, n_layers=1, n_heads=2, dropout=0.1, modality_dropout=0.2)
TINY_TRAIN = TrainConfig(epochs=3, batch_size=4, window=16, stride=8, eval_stride=8, median_kernel=3, lr=3e-3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("train") / "corpus"
    return write_small_corpus(root)


def test_training_reports_every_epoch_and_returns_best(corpus):
    reports = []
    result = train_model(corpus, TINY_MODEL, TINY_TRAIN, callback=reports.append)
    assert [r.epoch for r in reports] == [0, 1, 2]
    for report in reports:
        assert set(report.metrics) == {"macro_f1", "accuracy", "macro_f1_voting"}
        assert report.train_loss > 0
    assert reports[0].lr > reports[-1].lr >= 0, "cosine decay after warm-up"
    best = max(reports, key=lambda r: r.metrics["macro_f1"])
    assert result.best_epoch == best.epoch
    assert result.best_metrics == best.metrics
    assert result.model.config.visual_dim == 8 and result.model.config.audio_dim == 6


def test_resume_continues_the_same_run(corpus, tmp_path):
    straight = train_model(corpus, TINY_MODEL, TINY_TRAIN, run_dir=tmp_path / "straight")

    class Interrupt(Exception):
        pass

    def stop_after_first_epoch(report):
        if report.epoch == 0:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_model(corpus, TINY_MODEL, TINY_TRAIN, run_dir=tmp_path / "resumed", callback=stop_after_first_epoch)
    assert torch.load(tmp_path / "resumed" / CHECKPOINT_NAME, weights_only=False)["epoch"] == 0
    epochs_seen = []
    resumed = train_model(
        corpus, TINY_MODEL, TINY_TRAIN, run_dir=tmp_path / "resumed", callback=lambda r: epochs_seen.append(r.epoch)
    )
    assert epochs_seen == [1, 2], "the resumed run starts after the checkpointed epoch"
    assert [r.train_loss for r in resumed.history] == pytest.approx([r.train_loss for r in straight.history])
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value)


def test_artifact_round_trip(corpus, tmp_path):
    result = train_model(corpus, TINY_MODEL, TrainConfig(**{**TINY_TRAIN.to_dict(), "epochs": 1}))
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
