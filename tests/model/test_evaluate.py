"""Evaluation and offline prediction with a model trained for one epoch on a tiny corpus."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from factories import make_planted_record, make_record, write_small_corpus

from exprfusion.core.errors import InputError, MissingInputError
from exprfusion.core.labels import CLASS_NAMES, NUM_CLASSES
from exprfusion.data.annotations import read_submission
from exprfusion.data.corpus_writer import CorpusWriter
from exprfusion.data.split_tensors import load_split
from exprfusion.data.windows import build_window_index
from exprfusion.evaluation.evaluate import EvaluateConfig, evaluate_model, timeline_file_name
from exprfusion.evaluation.scoring import robustness_scores, score_split, scores_from_labels
from exprfusion.inference.predict import predict_video, write_split_submission
from exprfusion.inference.voting import vote_and_filter
from exprfusion.model.artifact import load_model, save_model
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.training.train import train_model
from exprfusion.training.train_config import TrainConfig

TINY_MODEL = FusionConfig.paper(d_model=16, n_layers=1, n_heads=2, modality_dropout=0.2)
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
    metrics = evaluate_model(
        model_path,
        corpus,
        metrics_path=out / "scores" / "metrics.json",
        plots_dir=out / "plots",
        config=EvaluateConfig(timeline_videos=2),
        progress=lambda d, t: steps.append((d, t)),
    )
    return metrics, out, steps


def test_evaluate_writes_every_output(evaluation):
    metrics, reports, steps = evaluation
    assert json.loads((reports / "scores" / "evaluation.json").read_text()) == metrics, "the report beside metrics"
    headline = json.loads((reports / "scores" / "metrics.json").read_text())
    assert headline["macro_f1"] == round(metrics["macro_f1"], 4)
    assert [headline["macro_f1_lo"], headline["macro_f1_hi"]] == [round(v, 4) for v in metrics["macro_f1_ci"]]
    assert headline["baseline"] == round(metrics["baseline"]["reference_macro_f1"], 4)
    assert [headline["margin_lo"], headline["margin_hi"]] == [round(v, 4) for v in metrics["baseline"]["margin_ci"]]
    assert all(isinstance(value, float) for value in headline.values()), "only scores: no settings, labels or lists"
    out = reports / "plots"
    assert not (out / "metrics.json").exists()
    pngs = ["confusion_matrix.png", "per_class_f1.png", "robustness.png"]
    pngs += [timeline_file_name(video) for video in ("v_long", "v_mid")]
    for name in pngs:
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    assert not (out / timeline_file_name("v_dark")).exists(), "only the longest videos get a timeline"
    robustness_rows = json.loads((out / "robustness.json").read_text())
    assert [row["missing_face_fraction"] for row in robustness_rows] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [row["macro_f1"] for row in robustness_rows] == [metrics["robustness"][f] for f in FRACTIONS]
    class_rows = json.loads((out / "per_class_f1.json").read_text())
    assert class_rows == [
        {"order": order, "class": name, "f1": metrics["per_class_f1"][name]} for order, name in enumerate(CLASS_NAMES)
    ]
    assert steps[-1][0] == steps[-1][1], "progress reaches its total"
    assert not list(out.glob(".*")), "no temporary files left behind"


def test_scores_are_the_hand_computed_ones():
    # One video of 6 frames, windows of 2 with stride 2: each frame is voted by one window, so the voted labels are
    # the argmax of the hand-made logits: [0, 1, 0, 1, 1, 2]. The 3-frame median (edges repeated) gives
    # [0, 0, 1, 1, 1, 2]. Frame 4 is unlabelled (-1).
    truth = np.array([0, 0, 1, 1, -1, 2])
    voted = np.array([0, 1, 0, 1, 1, 2])
    index = build_window_index([6], window=2, stride=2)
    logits = np.eye(NUM_CLASSES)[voted].reshape(3, 2, NUM_CLASSES) * 4.0
    prediction = vote_and_filter(logits, index, median_kernel=3)
    np.testing.assert_array_equal(prediction.labels, [0, 0, 1, 1, 1, 2])
    scores = scores_from_labels(truth, prediction, single_pass=np.zeros(6, dtype=np.int64))
    # Served: all 5 labelled frames right; classes 0, 1, 2 score F1 1, the other five 0 → 3/8.
    assert scores.metrics["macro_f1"] == pytest.approx(3 / 8)
    assert scores.metrics["accuracy"] == pytest.approx(1.0)
    # Voting alone, on frames 0-3 and 5: class 0 and class 1 each 1 hit, 1 false alarm, 1 miss → F1 1/2; class 2
    # F1 1 → (1/2 + 1/2 + 1) / 8.
    assert scores.metrics["macro_f1_voting"] == pytest.approx(2 / 8)
    # Single pass says 0 everywhere: class 0 precision 2/5, recall 2/2 → F1 2·(2/5)/(7/5) = 4/7; the rest 0.
    assert scores.metrics["macro_f1_frame"] == pytest.approx((4 / 7) / 8)
    assert scores.metrics["n_frames"] == 5
    assert scores.metrics["per_class_f1"] == {name: (1.0 if i < 3 else 0.0) for i, name in enumerate(CLASS_NAMES)}
    expected_confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    expected_confusion[0, 0] = expected_confusion[1, 1] = 2
    expected_confusion[2, 2] = 1
    np.testing.assert_array_equal(scores.confusion, expected_confusion)


def test_evaluation_reports_the_served_scores(evaluation, corpus):
    metrics, _, _ = evaluation
    for key in ("accuracy", "macro_f1", "macro_f1_frame", "macro_f1_voting", "per_class_f1", "n_frames"):
        assert key in metrics
    assert list(metrics["robustness"]) == FRACTIONS
    assert metrics["robustness_auc"] == pytest.approx(np.mean(list(metrics["robustness"].values())))
    assert metrics["robustness"]["0.0"] == metrics["macro_f1"]
    # Labelled frames counted from the annotation files themselves, not from the scoring code.
    labelled = 0
    for path in sorted((corpus / "annotations").rglob("Validation_Set/*.txt")):
        labelled += sum(int(line) >= 0 for line in path.read_text().splitlines()[1:])
    assert metrics["n_frames"] == labelled


def test_every_score_is_reported_with_its_interval(evaluation):
    metrics, _, _ = evaluation
    intervals = {key: metrics[f"{key}_ci"] for key in ("macro_f1", "accuracy", "macro_f1_voting", "macro_f1_frame")}
    intervals.update({f"robustness {f}": metrics["robustness_ci"][f] for f in FRACTIONS})
    baseline = metrics["baseline"]
    intervals.update({key: baseline[f"{key}_ci"] for key in ("visual", "audio", "both", "reference_macro_f1")})
    for key, (lo, hi) in intervals.items():
        assert 0.0 <= lo <= hi <= 1.0, key
    assert metrics["robustness_ci"]["0.0"] == metrics["macro_f1_ci"]
    assert set(metrics["per_class_f1_ci"]) == set(CLASS_NAMES)
    for key in ("margin_ci", "audio_floor_margin_ci"):
        lo, hi = baseline[key]
        assert -1.0 <= lo <= hi <= 1.0, key
    # Three videos: the resamples draw 3 of them with replacement, seeded by the evaluation's seed.
    assert metrics["uncertainty"] == {
        "method": "percentile bootstrap over videos", "resamples": 1000, "videos": 3, "level": 0.95, "seed": 0,
    }  # fmt: skip


@pytest.fixture(scope="module")
def face_reliant_model(tmp_path_factory):
    """A model trained on a corpus whose classes are planted in the faces only (the audio is noise)."""
    root = tmp_path_factory.mktemp("faces") / "corpus"
    with CorpusWriter(root) as writer:
        for i in range(6):
            writer.add(make_planted_record(f"t{i}", "train", n=120, seed=i))
        for i in range(3):
            writer.add(make_planted_record(f"v{i}", "validation", n=120, seed=20 + i))
    train = TrainConfig(epochs=6, batch_size=8, window=16, eval_stride=4, median_kernel=3, lr=3e-3, patience=6)
    result = train_model(root, FusionConfig.paper(d_model=32, n_layers=1, n_heads=2, modality_dropout=0.0), train)
    return result.model, load_split(root, "validation"), train.inference()


def test_robustness_falls_as_more_faces_are_hidden(face_reliant_model):
    model, validation, inference = face_reliant_model
    unmasked = score_split(model, validation, inference)
    assert unmasked.metrics["macro_f1"] > 0.6, "the planted face signal is learnt"
    scores = robustness_scores(model, validation, inference, [0.0, 0.5, 1.0], seed=0)
    assert scores["0.0"] == pytest.approx(unmasked.metrics["macro_f1"])
    # Hiding half the faces costs at least 0.1; hiding all leaves the audio noise, near chance (1/8 of the classes
    # at best): the curve must fall, and fall below the unmasked score.
    assert scores["0.5"] < scores["0.0"] - 0.1
    assert scores["1.0"] < scores["0.5"]
    assert scores["1.0"] < 0.3


def test_unlabelled_split_is_refused_before_writing(model_path, corpus, tmp_path):
    with pytest.raises(InputError, match="no labelled frames"):
        evaluate_model(
            model_path,
            corpus,
            metrics_path=tmp_path / "reports" / "metrics.json",
            plots_dir=tmp_path / "reports",
            config=EvaluateConfig(split="test"),
        )
    assert not (tmp_path / "reports").exists()


def test_missing_model_is_refused_before_writing(corpus, tmp_path):
    with pytest.raises(MissingInputError, match=r"none\.pt: model file not found"):
        evaluate_model(
            tmp_path / "none.pt", corpus, metrics_path=tmp_path / "reports" / "m.json", plots_dir=tmp_path / "reports"
        )
    assert not (tmp_path / "reports").exists()


def test_corpus_with_other_feature_widths_is_refused(model_path, tmp_path):
    other = tmp_path / "other"
    with CorpusWriter(other) as writer:
        writer.add(make_record("w", "validation", n=20, dims=(5, 6)))
    with pytest.raises(InputError, match="visual features have 5 values per frame, the model expects 8"):
        evaluate_model(model_path, other, metrics_path=tmp_path / "m.json", plots_dir=tmp_path / "reports")


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
    # Control: where the face is seen, the same change to the visual features does move the output.
    with_face = np.ones(40, bool)
    _, seen = predict_video(model, inference, visual, audio, with_face, with_audio)
    _, seen_scrambled = predict_video(model, inference, visual * 100, audio, with_face, with_audio)
    assert np.abs(seen - seen_scrambled).max() > 1e-3, "visual features seen by the model must change its output"


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


def test_evaluation_reports_the_baseline_beside_the_model(evaluation):
    metrics, reports, _ = evaluation
    baseline = metrics["baseline"]
    assert set(baseline) == {
        "visual", "audio", "both", "compared_with", "reference_macro_f1", "margin", "beats_baseline",
        "audio_floor_margin", "reaches_audio_floor", "smoothing", "train_frames",
        "visual_ci", "audio_ci", "both_ci", "reference_macro_f1_ci", "margin_ci", "audio_floor_margin_ci",
    }  # fmt: skip
    best = max(baseline["visual"], baseline["audio"], baseline["both"])
    assert baseline["reference_macro_f1"] == best and baseline[baseline["compared_with"]] == best
    assert baseline["margin"] == pytest.approx(metrics["macro_f1"] - best)
    assert baseline["beats_baseline"] == (metrics["macro_f1"] > best)
    assert baseline["audio_floor_margin"] == pytest.approx(metrics["robustness"]["1.0"] - baseline["audio"])
    # The 3 train videos of 60 frames: the labelled frames with a face or audio (audio is everywhere).
    assert baseline["train_frames"] == sum(
        (make_record(f"t{i}", "train", n=60, seed=i).labels >= 0).sum() for i in range(3)
    )
    assert json.loads((reports / "scores" / "evaluation.json").read_text())["baseline"] == baseline


def test_evaluation_without_the_baseline(model_path, corpus, tmp_path):
    metrics = evaluate_model(
        model_path,
        corpus,
        metrics_path=tmp_path / "metrics.json",
        plots_dir=tmp_path,
        config=EvaluateConfig.from_dict(
            {"timeline_videos": 0, "robustness_fractions": [0.0], "baseline": {"enabled": False}}
        ),
    )
    assert "baseline" not in metrics
