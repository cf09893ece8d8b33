"""Corpus statistics, checked against numbers worked out by hand from a corpus of four short videos."""

from __future__ import annotations

import numpy as np
import pytest

from exprfusion.data.corpus import Corpus, VideoRecord
from exprfusion.data.corpus_writer import CorpusWriter
from exprfusion.evaluation.corpus_description import class_distribution, fps_mix, split_summary

# The corpus (label -1 = not annotated; face / audio: 1 = present):
#   a_left   train       30 fps  labels 0 0 4 4 -1 7   faces 1 1 0 1 0 1   audio 1 1 1 1 1 1
#   a_right  train       30 fps  labels 7 7 7 1        faces 1 1 1 1       audio 1 1 0 0
#   v        validation  7.5 fps labels 3 3 -1 -1      faces 0 0 1 1       audio 1 1 1 1
#   t        test        25 fps  (no labels, 5 frames) faces 1 0 0 0 1     audio 1 1 1 1 1
VIDEOS = {
    "a_left": ("train", 30.0, [0, 0, 4, 4, -1, 7], [1, 1, 0, 1, 0, 1], None),
    "a_right": ("train", 30.0, [7, 7, 7, 1], [1, 1, 1, 1], [1, 1, 0, 0]),
    "v": ("validation", 7.5, [3, 3, -1, -1], [0, 0, 1, 1], None),
    "t": ("test", 25.0, [-1] * 5, [1, 0, 0, 0, 1], None),
}

# Aff-Wild2 EXPR frames per class as published by the ABAW challenge (Neutral ... Other), entered here by hand.
PUBLISHED_TRAIN = (177_198, 16_573, 10_771, 9_080, 95_463, 78_751, 31_615, 165_866)
PUBLISHED_VALIDATION = (82_258, 6_126, 5_296, 8_408, 34_511, 25_157, 12_332, 106_444)


def record(name: str) -> VideoRecord:
    split, fps, labels, faces, audio = VIDEOS[name]
    n = len(labels)
    faces = np.asarray(faces, dtype=bool)
    return VideoRecord(
        name=name,
        split=split,
        fps=fps,
        visual=np.ones((n, 4), np.float16) * faces[:, None],
        audio=np.ones((n, 2), np.float16),
        face_mask=faces,
        audio_mask=np.ones(n, bool) if audio is None else np.asarray(audio, bool),
        labels=np.asarray(labels),
    )


@pytest.fixture
def corpus(tmp_path):
    with CorpusWriter(tmp_path / "c") as writer:
        for name in VIDEOS:
            writer.add(record(name))
    return Corpus(tmp_path / "c")


def test_split_summary_counts_frames_and_rates_by_hand(corpus):
    summary = split_summary(corpus)
    assert summary.index.tolist() == ["train", "validation", "test"]
    expected = {
        # train: 6 + 4 frames; 5 + 4 labelled; one labelled frame without a face (a_left frame 3);
        # two frames without a face, both in a_left (2 of 6); two frames without audio (a_right).
        "train": dict(
            videos=2, frames=10, labelled_frames=9, ignored_frames=1, missing_face_rate=1 / 9,
            missing_face_rate_all_frames=2 / 10, worst_video_missing_face_rate=2 / 6, missing_audio_rate=2 / 10,
            two_person_videos=2,
        ),
        # validation: both labelled frames lack a face; 2 of 4 frames lack one.
        "validation": dict(
            videos=1, frames=4, labelled_frames=2, ignored_frames=2, missing_face_rate=2 / 2,
            missing_face_rate_all_frames=2 / 4, worst_video_missing_face_rate=2 / 4, missing_audio_rate=0.0,
            two_person_videos=0,
        ),
        # test: nothing labelled (the rate over labelled frames is 0 by convention); 3 of 5 frames lack a face.
        "test": dict(
            videos=1, frames=5, labelled_frames=0, ignored_frames=5, missing_face_rate=0.0,
            missing_face_rate_all_frames=3 / 5, worst_video_missing_face_rate=3 / 5, missing_audio_rate=0.0,
            two_person_videos=0,
        ),
    }  # fmt: skip
    for split, values in expected.items():
        for column, value in values.items():
            assert summary.loc[split, column] == pytest.approx(value), f"{split} {column}"


def test_class_distribution_shares_by_hand(corpus):
    table = class_distribution(corpus)
    assert table.index.tolist() == ["Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other"]
    # train: 9 labelled frames: Neutral 2 (a_left), Anger 1 (a_right), Happiness 2 (a_left), Other 1 + 3.
    assert table["train"].tolist() == pytest.approx([2 / 9, 1 / 9, 0, 0, 2 / 9, 0, 0, 4 / 9])
    # validation: two Fear frames.
    assert table["validation"].tolist() == pytest.approx([0, 0, 0, 1, 0, 0, 0, 0])
    assert "test" not in table.columns, "a split without labels has no distribution"


def test_class_distribution_sits_beside_the_published_affwild2_shares(corpus):
    table = class_distribution(corpus)
    train_total, validation_total = sum(PUBLISHED_TRAIN), sum(PUBLISHED_VALIDATION)
    assert table["train_affwild2"].tolist() == pytest.approx([c / train_total for c in PUBLISHED_TRAIN])
    assert table["validation_affwild2"].tolist() == pytest.approx([c / validation_total for c in PUBLISHED_VALIDATION])
    assert table.loc["Other", "validation_affwild2"] == pytest.approx(0.379, abs=0.001), "README: Other 37.9 %"


def test_fps_mix_counts_videos_per_rate_and_split(corpus):
    mix = fps_mix(corpus)
    assert mix.index.tolist() == [30.0, 25.0, 7.5], "highest rate first"
    assert mix.columns.tolist() == ["train", "validation", "test"]
    assert mix.to_numpy().tolist() == [[2, 0, 0], [0, 0, 1], [0, 1, 0]]
