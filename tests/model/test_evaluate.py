"""Evaluation and offline prediction with a model trained for one epoch on a tiny corpus."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from factories import make_record, write_small_corpus

from exprfusion.annotations import read_submission
from exprfusion.artifact import load_model, save_model
from exprfusion.corpus import CorpusWriter
from exprfusion.data import load_split
from exprfusion.evaluate import evaluate_model, timeline_file_name
from exprfusion.inference import predict_split, single_pass_labels
from exprfusion.labels import CLASS_NAMES, NUM_CLASSES
from exprfusion.metrics import macro_f1
from exprfusion.model import FusionConfig
from exprfusion.predict import predict_video, write_split_submission
from exprfusion.train import TrainConfig, train_model

TINY_MODEL = FusionConfig(d_model=16, n_layers=1, n_heads=2, modality_dropout=0.2)
TINY_TRAIN = TrainConfig(epochs=1, batch_size=8, window=16, stride=8, eval_stride=8, median_kernel=3, lr=3e-3)
FRACTIONS = ["0.0", "0.25", "0.5", "0.75", "1.0"]


def faceless(record):
    """The record with no face in any frame and no audio at all."""
    n = record.n_frames
    return replace(
        record,
        visual=np.zeros_like(record.visual),
        face_mask=np.zeros(n, dtype=bool),
        audio_mask=np.zeros(n, dtype=bool),
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate") / "corpus"
    extra = (
        make_record("v_long", "validation", n=90, seed=10),
        make_record("v_mid", "validation", n=50, seed=11),
        faceless(make_record("v_dark", "validation", n=12, seed=12)),
        make_record("x_test", "test", n=30, seed=13),
    )
    return write_small_corpus(root, n_train=3, n_validation=0, extra=extra)


@pytest.fixture(scope="module")
def model_path(corpus, tmp_path_factory):
    result = train_model(corpus, TINY_MODEL, TINY_TRAIN)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    return save_model(path, result.model, TINY_TRAIN.inference(), {"best_epoch": result.best_epoch})


@pytest.fixture(scope="module")
def evaluation(model_path, corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    steps = []
    metrics = evaluate_model(model_path, corpus, out, timeline_videos=2, progress=lambda d, t: steps.append((d, t)))
    return metrics, out, steps


def test_evaluate_writes_every_output(evaluation):
    metrics, out, steps = evaluation
    pngs = ["confusion_matrix.png", "per_class_f1.png", "robustness.png"]
    pngs += [timeline_file_name(video) for video in ("v_long", "v_mid")]
    for name in pngs:
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    assert not (out / timeline_file_name("v_dark")).exists(), "only the longest videos get a timeline"
    assert json.loads((out / "metrics.json").read_text()) == metrics
    robustness_rows = json.loads((out / "robustness.json").read_text())
    assert [row["missing_face_fraction"] for row in robustness_rows] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [row["macro_f1"] for row in robustness_rows] == [metrics["robustness"][f] for f in FRACTIONS]
    class_rows = json.loads((out / "per_class_f1.json").read_text())
    assert class_rows == [{"class": name, "f1": metrics["per_class_f1"][name]} for name in CLASS_NAMES]
    assert steps[-1][0] == steps[-1][1], "progress reaches its total"
    assert not list(out.glob(".*")), "no temporary files left behind"


def test_metrics_match_the_predictions(evaluation, model_path, corpus):
    metrics, _, _ = evaluation
    for key in ("accuracy", "macro_f1", "macro_f1_frame", "macro_f1_voting", "per_class_f1", "n_frames"):
        assert key in metrics
    assert list(metrics["robustness"]) == FRACTIONS
    assert all(0.0 <= value <= 1.0 for value in metrics["robustness"].values())
    assert metrics["robustness_auc"] == pytest.approx(np.mean(list(metrics["robustness"].values())))
    assert metrics["robustness"]["0.0"] == metrics["macro_f1"]

    model, inference, _ = load_model(model_path)
    data = load_split(corpus, "validation")
    truth = data.labels.numpy()
    served = predict_split(model, data, inference.window, inference.stride, inference.median_kernel)
    assert metrics["macro_f1"] == pytest.approx(macro_f1(truth, served.labels))
    assert metrics["macro_f1_voting"] == pytest.approx(macro_f1(truth, served.labels_voting))
    frame = single_pass_labels(model, data, inference.window)
    assert metrics["macro_f1_frame"] == pytest.approx(macro_f1(truth, frame))
    assert metrics["n_frames"] == int((truth >= 0).sum())


def test_unlabelled_split_is_refused_before_writing(model_path, corpus, tmp_path):
    with pytest.raises(ValueError, match="no labelled frames"):
        evaluate_model(model_path, corpus, tmp_path / "reports", split="test")
    assert not (tmp_path / "reports").exists()


def test_missing_model_is_refused_before_writing(corpus, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"none\.pt: model file not found"):
        evaluate_model(tmp_path / "none.pt", corpus, tmp_path / "reports")
    assert not (tmp_path / "reports").exists()


def test_corpus_with_other_feature_widths_is_refused(model_path, tmp_path):
    other = tmp_path / "other"
    with CorpusWriter(other) as writer:
        writer.add(make_record("w", "validation", n=20, dims=(5, 6)))
    with pytest.raises(ValueError, match="visual features have 5 values per frame, the model expects 8"):
        evaluate_model(model_path, other, tmp_path / "reports")


def test_every_frame_gets_a_label_even_without_face_or_audio(model_path):
    model, inference, _ = load_model(model_path)
    rng = np.random.default_rng(0)
    for n in (1, 7, 16, 45):  # shorter than, equal to and longer than the 16-frame window
        visual = rng.standard_normal((n, 8)).astype(np.float32)
        audio = rng.standard_normal((n, 6)).astype(np.float32)
        for face_mask, audio_mask in ((np.ones(n, bool), np.ones(n, bool)), (np.zeros(n, bool), np.zeros(n, bool))):
            labels, probabilities = predict_video(model, inference, visual, audio, face_mask, audio_mask)
            assert labels.shape == (n,) and labels.dtype == np.int64
            assert ((labels >= 0) & (labels < NUM_CLASSES)).all()
            assert probabilities.shape == (n, NUM_CLASSES) and probabilities.dtype == np.float32
            assert np.isfinite(probabilities).all()
            np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_masked_frames_do_not_leak_their_features(model_path):
    model, inference, _ = load_model(model_path)
    rng = np.random.default_rng(1)
    visual = rng.standard_normal((40, 8)).astype(np.float32)
    audio = rng.standard_normal((40, 6)).astype(np.float32)
    no_face, with_audio = np.zeros(40, bool), np.ones(40, bool)
    _, probabilities = predict_video(model, inference, visual, audio, no_face, with_audio)
    _, scrambled = predict_video(model, inference, visual * 100, audio, no_face, with_audio)
    np.testing.assert_allclose(probabilities, scrambled, atol=1e-6)


def test_submission_matches_per_video_prediction(model_path, corpus, tmp_path):
    out = write_split_submission(model_path, corpus, "validation", tmp_path / "submission.txt")
    submitted = read_submission(out)
    model, inference, _ = load_model(model_path)
    data = load_split(corpus, "validation")
    assert sorted(submitted) == sorted(data.videos)
    for number, video in enumerate(data.videos):
        rows = data.video_rows(number)
        labels, _ = predict_video(
            model, inference, data.visual[rows], data.audio[rows], data.face_mask[rows], data.audio_mask[rows]
        )
        np.testing.assert_array_equal(submitted[video], labels)
