"""Corpus statistics computed from the manifest."""

from __future__ import annotations

import numpy as np
import pytest

from exprfusion.corpus import Corpus, CorpusWriter, VideoRecord
from exprfusion.describe import REFERENCE_SHARES, class_distribution, fps_mix, split_summary


def record(name, split, labels, faces, fps=30.0, audio=None):
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
        writer.add(record("a_left", "train", [0, 0, 4, 4, -1, 7], [1, 1, 0, 1, 0, 1]))
        writer.add(record("a_right", "train", [7, 7, 7, 1], [1, 1, 1, 1], audio=[1, 1, 0, 0]))
        writer.add(record("v", "validation", [3, 3, -1, -1], [0, 0, 1, 1], fps=7.5))
    return Corpus(tmp_path / "c")


def test_split_summary(corpus):
    summary = split_summary(corpus)
    train = summary.loc["train"]
    assert train["videos"] == 2 and train["frames"] == 10 and train["labelled_frames"] == 9
    assert train["missing_face_rate"] == pytest.approx(1 / 9), "one labelled frame without a face"
    assert train["missing_face_rate_all_frames"] == pytest.approx(2 / 10)
    assert train["worst_video_missing_face_rate"] == pytest.approx(2 / 6)
    assert train["missing_audio_rate"] == pytest.approx(2 / 10)
    assert train["two_person_videos"] == 2
    assert summary.loc["validation", "missing_face_rate"] == pytest.approx(1.0)


def test_class_distribution_beside_affwild2_reference(corpus):
    table = class_distribution(corpus)
    assert table.loc["Other", "train"] == pytest.approx(4 / 9)
    assert table.loc["Fear", "validation"] == pytest.approx(1.0)
    assert table["train_affwild2"].tolist() == pytest.approx(list(REFERENCE_SHARES["train"]))
    assert REFERENCE_SHARES["validation"][7] == pytest.approx(0.379, abs=0.001), "AFFWILD2.md: Other 37.9 %"


def test_fps_mix(corpus):
    mix = fps_mix(corpus)
    assert mix.loc[30.0, "train"] == 2 and mix.loc[7.5, "validation"] == 1 and mix.loc[7.5, "train"] == 0
