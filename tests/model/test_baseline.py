"""The logistic-regression baseline: smoothing by hand, a planted signal, standardisation on present frames only."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from factories import make_planted_record

from exprfusion.core.errors import InputError
from exprfusion.core.labels import NUM_CLASSES
from exprfusion.data.corpus import Corpus
from exprfusion.data.corpus_writer import CorpusWriter
from exprfusion.data.split_tensors import load_split
from exprfusion.evaluation.baseline import (
    BaselineConfig,
    baseline_scores,
    fit_baseline,
    load_training_frames,
    sample_training_frames,
    smoothed_labels,
)
from exprfusion.evaluation.evaluate import EvaluateConfig, baseline_lines, baseline_report

NAN = [np.nan] * 4


def test_smoothed_labels_match_a_hand_computation():
    # Four classes, ±1 frame (windows of 3, the edges repeat the first and last frame). Frames 2-4 have no input.
    probabilities = np.array(
        [[0.6, 0.3, 0.1, 0.0], [0.2, 0.7, 0.1, 0.0], NAN, NAN, NAN, [0.1, 0.3, 0.6, 0.0]], dtype=np.float64
    )
    prior = np.array([0.1, 0.1, 0.2, 0.6])
    # Frame 0: 2 x frame 0 + frame 1 = [1.4, 1.3, 0.3, 0] -> 0 (without the repeated edge it would be 1).
    # Frame 1: frames 0 and 1 (frame 2 ignored) = [0.8, 1.0, 0.2, 0] -> 1.   Frame 2: frame 1 alone -> 1.
    # Frame 3: frames 2-4 all missing -> the prior's argmax, 3.   Frames 4 and 5: frame 5 alone -> 2.
    np.testing.assert_array_equal(smoothed_labels(probabilities, 1, prior), [0, 1, 1, 3, 2, 2])
    # No smoothing: each frame's own argmax, and the prior wherever the input is missing.
    np.testing.assert_array_equal(smoothed_labels(probabilities, 0, prior), [0, 1, 3, 3, 3, 2])


def write_planted_corpus(root, transform=lambda record: record):
    """Train: 6 videos, validation: 4, of 160 frames each; the class is planted in the visual features only."""
    with CorpusWriter(root) as writer:
        for i in range(6):
            writer.add(transform(make_planted_record(f"t{i}", "train", n=160, seed=i)))
        for i in range(4):
            writer.add(transform(make_planted_record(f"v{i}", "validation", n=160, seed=50 + i)))
    return root


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = write_planted_corpus(tmp_path_factory.mktemp("planted") / "corpus")
    return Corpus(root), load_split(root, "validation")


# Segments are 10 frames long, so the smoothing must stay inside them: ±3 frames.
SHORT = BaselineConfig(smoothing=3)


def test_a_signal_planted_in_the_faces_is_found_by_the_visual_baselines_only(planted):
    corpus, validation = planted
    truth = validation.labels.numpy()
    assert set(np.unique(truth)) == set(range(NUM_CLASSES)), "every class is scored (else macro-F1 <= 7/8)"
    scores = baseline_scores(load_training_frames(corpus, SHORT), validation, SHORT)
    # The class adds 3 to its own visual dimension over unit noise: a frame's class is read right ~90 % of the time,
    # and a 7-frame average inside 10-frame segments fixes most of the rest, so the visual and both baselines are
    # near perfect. The audio is pure noise: chance is 1/8; 0.35 leaves room for a lucky run, never a learnt one.
    assert scores["visual"] >= 0.9
    assert scores["both"] >= 0.9
    assert scores["audio"] <= 0.35


def hide_faces_with(value):
    """Hide the faces of every fourth 5-frame burst and write ``value`` in those visual rows."""

    def transform(record):
        face_mask = (np.arange(record.n_frames) // 5) % 4 != 0
        visual = record.visual.copy()
        visual[~face_mask] = value
        return replace(record, visual=visual, face_mask=face_mask)

    return transform


def test_standardisation_ignores_the_rows_of_absent_faces(tmp_path):
    predictions = {}
    for value in (0.0, 1e4):
        root = write_planted_corpus(tmp_path / f"corpus_{value:g}", hide_faces_with(value))
        training = load_training_frames(Corpus(root), SHORT)
        validation = load_split(root, "validation")
        for modality in ("visual", "both"):
            predictions[value, modality] = fit_baseline(training, modality, SHORT).predict(validation, 3)
    # Fitted on every row, the scaler's mean would be ~2500 and its scale ~4300 in each dimension, drowning the
    # planted signal (3): the predictions would differ.
    for modality in ("visual", "both"):
        np.testing.assert_array_equal(predictions[0.0, modality], predictions[1e4, modality])


def test_the_sample_is_stratified_seeded_and_the_same_from_a_split_or_the_corpus(planted):
    corpus, _ = planted
    config = BaselineConfig(max_train_frames=200, seed=3)
    from_corpus = load_training_frames(corpus, config)
    from_split = sample_training_frames(load_split(corpus.root, "train"), config)
    for name in ("visual", "audio", "face_mask", "audio_mask", "labels"):
        np.testing.assert_array_equal(from_corpus.frames[name], from_split.frames[name])
    labels = from_corpus.frames["labels"]
    assert labels.size == 200
    # Stratified: each class keeps its share of the 960 training frames, up to rounding.
    all_labels = load_split(corpus.root, "train").labels.numpy()
    expected = 200 * np.bincount(all_labels, minlength=NUM_CLASSES) / all_labels.size
    assert np.abs(np.bincount(labels, minlength=NUM_CLASSES) - expected).max() <= 1
    np.testing.assert_allclose(from_corpus.prior, np.bincount(all_labels, minlength=NUM_CLASSES) / all_labels.size)
    other_seed = load_training_frames(corpus, replace(config, seed=4))
    assert not np.array_equal(other_seed.frames["visual"], from_corpus.frames["visual"])


def test_a_corpus_without_labelled_train_frames_is_refused(tmp_path):
    with CorpusWriter(tmp_path / "corpus") as writer:
        writer.add(make_planted_record("v", "validation", n=20))
    with pytest.raises(InputError, match=r"no labelled frames.*evaluate\.baseline\.enabled: false"):
        load_training_frames(Corpus(tmp_path / "corpus"), BaselineConfig())


def test_the_report_compares_the_model_with_the_best_baseline():
    scores = {"visual": 0.40, "audio": 0.25, "both": 0.45}
    report = baseline_report(scores, 0.50, {"0.0": 0.50, "1.0": 0.20})
    assert report["compared_with"] == "both" and report["reference_macro_f1"] == 0.45
    assert report["margin"] == pytest.approx(0.05) and report["beats_baseline"] is True
    assert report["audio_floor_margin"] == pytest.approx(-0.05) and report["reaches_audio_floor"] is False
    summary, warnings = baseline_lines({"macro_f1": 0.50, "baseline": report})
    assert "+0.0500 against the both baseline" in summary
    assert warnings == ["warning: with every face hidden the model scores below the audio baseline (margin -0.0500)"]

    behind = baseline_report(scores, 0.42, {"0.5": 0.3})
    assert behind["margin"] == pytest.approx(-0.03) and behind["beats_baseline"] is False
    assert "audio_floor_margin" not in behind, "no fraction 1.0, no floor"
    _, warnings = baseline_lines({"macro_f1": 0.42, "baseline": behind})
    assert warnings == [
        "warning: the model does not beat the both baseline (macro-F1 0.4200 vs 0.4500, margin -0.0300)"
    ]
    assert baseline_lines({"macro_f1": 0.42}) == (None, [])


def test_baseline_settings_are_checked_by_their_full_path():
    config = EvaluateConfig.from_dict({"baseline": {"smoothing": 5, "enabled": False}})
    assert config.baseline == BaselineConfig(smoothing=5, enabled=False)
    assert config.to_dict()["baseline"]["smoothing"] == 5
    with pytest.raises(InputError, match=r"evaluate\.baseline\.smooth"):
        EvaluateConfig.from_dict({"baseline": {"smooth": 5}})
    with pytest.raises(InputError, match=r"BaselineConfig\.smoothing: must be >= 0, got -1"):
        BaselineConfig(smoothing=-1)
