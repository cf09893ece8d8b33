"""Expectations on the ``realistic`` profiles: the value statistics and identity-dominated faces of real features.

Every statistic is computed here from the written corpus (numpy over the loaded arrays), not with the generator's
helpers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from exprfusion.core.errors import InputError
from exprfusion.core.labels import NUM_CLASSES
from exprfusion.data.corpus import Corpus
from exprfusion.evaluation.information_probe import information_probe
from exprfusion.sources.synthetic import generate_corpus, get_profile
from exprfusion.sources.synthetic.profiles import FeatureStatistics

PROFILE = get_profile("realistic-tiny")
FLOOR = -14.0


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return Corpus(generate_corpus(tmp_path_factory.mktemp("realistic") / "corpus", "realistic-tiny", seed=0))


@pytest.fixture(scope="module")
def train(corpus: Corpus) -> dict:
    """The train split's faces, audio and labels, frame by frame, with each frame's subject."""
    faces, face_labels, face_subjects, audio = [], [], [], []
    for video in corpus.videos("train"):
        record = corpus.load(video)
        face = np.asarray(record.face_mask)
        faces.append(np.asarray(record.visual[face], dtype=np.float32))
        face_labels.append(np.asarray(record.labels)[face])
        face_subjects.append(np.full(int(face.sum()), record.subject))
        audio.append(np.asarray(record.audio[np.asarray(record.audio_mask)], dtype=np.float32))
    return {
        "visual": np.concatenate(faces),
        "labels": np.concatenate(face_labels),
        "subjects": np.concatenate(face_subjects),
        "audio": np.concatenate(audio),
    }


def floor_frames(audio: np.ndarray) -> np.ndarray:
    """Frames whose every value lies within 0.1 of the floor."""
    return np.all(np.abs(audio - FLOOR) < 0.1, axis=1)


def test_same_seed_gives_the_same_bytes_with_one_or_two_workers(tmp_path: Path, corpus: Corpus) -> None:
    parallel = Corpus(generate_corpus(tmp_path / "parallel", "realistic-tiny", seed=0, workers=2))
    other = Corpus(generate_corpus(tmp_path / "other", "realistic-tiny", seed=1, workers=1))
    assert parallel.content_hash() == corpus.content_hash()
    assert other.content_hash() != corpus.content_hash()


def test_offsets_dominate_the_spread_of_every_dimension(train: dict) -> None:
    visual = train["visual"]
    speech = train["audio"][~floor_frames(train["audio"])]
    for features in (visual, speech):
        ratio = np.abs(features.mean(axis=0)) / features.std(axis=0)
        assert np.median(ratio) >= 3.0, np.median(ratio)  # ~9 (faces) and ~13 (speech) with seed 0


def test_a_few_face_dimensions_carry_massive_activations(train: dict) -> None:
    visual = train["visual"]
    magnitude = np.abs(visual.mean(axis=0))
    massive = magnitude >= 10.0 * np.median(magnitude)
    assert massive.sum() == PROFILE.visual.statistics.massive_dims == 3
    # Near-constant: their spread is of the ordinary size, tiny against their magnitude.
    assert np.all(visual[:, massive].std(axis=0) < 0.02 * magnitude[massive])
    assert np.median(visual[:, massive].std(axis=0)) < 3.0 * np.median(visual.std(axis=0))
    speech = train["audio"][~floor_frames(train["audio"])]
    assert not np.any(np.abs(speech.mean(axis=0)) >= 10.0 * np.median(np.abs(speech.mean(axis=0))))


def test_audio_is_a_log_energy_with_silence_on_the_floor(corpus: Corpus, train: dict) -> None:
    audio = train["audio"]
    floor = floor_frames(audio)
    speech = audio[~floor]
    assert 0.2 < floor.mean() < 0.5  # the profile's silence share is 0.25-0.45 of frames
    assert audio.min() >= FLOOR - 1e-3
    assert -12.0 < np.median(speech) < -5.0 and np.quantile(speech, 0.99) < -3.0
    # Silence sits on the floor; speech varies from frame to frame and across dimensions.
    assert np.median(audio[floor].std(axis=1)) < 0.05 * np.median(speech.std(axis=1))
    assert np.abs(audio[floor] - FLOOR).max() < 0.1
    # A media without an audio track is still zeros with a False mask, not the floor.
    without = corpus.manifest.index[corpus.manifest["audio_rate"] == 0.0]
    assert len(without) and not np.asarray(corpus.load(without[0]).audio).any()


def nearest_centroid_accuracy(features: np.ndarray, groups: np.ndarray) -> float:
    """Share of frames whose nearest group centroid (Euclidean, raw features) is their own group's."""
    names = np.unique(groups)
    centroids = np.stack([features[groups == name].mean(axis=0) for name in names])
    distances = ((features[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    return float(np.mean(names[distances.argmin(axis=1)] == groups))


def test_faces_say_who_more_than_what(train: dict) -> None:
    visual, subjects = train["visual"], train["subjects"]
    labelled = train["labels"] >= 0
    who = nearest_centroid_accuracy(visual, subjects)
    what = nearest_centroid_accuracy(visual[labelled], train["labels"][labelled])
    assert who > 0.95 and what < 0.5, (who, what)  # 0.997 and 0.43 with seed 0
    # Between-subject variance of the subjects' mean faces against, within each subject, the variance of the
    # class means around that subject's own mean (the expression as a deviation from the neutral).
    names = np.unique(subjects)
    subject_means = np.stack([visual[subjects == name].mean(axis=0) for name in names])
    between_subjects = subject_means.var(axis=0).sum()
    within = []
    for name in names:
        own = labelled & (subjects == name)
        classes = [c for c in range(NUM_CLASSES) if np.sum(own & (train["labels"] == c)) >= 30]
        class_means = np.stack([visual[own & (train["labels"] == c)].mean(axis=0) for c in classes])
        within.append(class_means.var(axis=0).sum())
    ratio = between_subjects / np.mean(within)
    assert ratio > 4.0, ratio  # 5.3 with seed 0 (9 on the default-sized profile, with more frames per class)


def test_few_subjects_each_in_several_videos_and_disjoint_splits(corpus: Corpus) -> None:
    manifest = corpus.manifest
    train = manifest.loc[manifest["split"] == "train", "subject"]
    validation = manifest.loc[manifest["split"] == "validation", "subject"]
    assert train.nunique() == 4 and validation.nunique() == 2
    assert train.value_counts().max() >= 3  # subjects recur across videos
    assert not set(train) & set(validation)


def centred_frames(corpus: Corpus, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Labelled face frames of a split with each video's mean face subtracted, and their labels."""
    features, labels = [], []
    for video in corpus.videos(split):
        record = corpus.load(video)
        face, frame_labels = np.asarray(record.face_mask), np.asarray(record.labels)
        visual = np.asarray(record.visual, dtype=np.float32)
        visual -= visual[face].mean(axis=0)
        keep = face & (frame_labels >= 0)
        features.append(visual[keep])
        labels.append(frame_labels[keep])
    return np.concatenate(features), np.concatenate(labels)


def test_expression_is_learnable_once_each_video_is_centred(corpus: Corpus) -> None:
    train_x, train_y = centred_frames(corpus, "train")
    test_x, test_y = centred_frames(corpus, "validation")
    scaler = StandardScaler().fit(train_x)

    def validation_f1(labels: np.ndarray) -> float:
        model = LogisticRegression(max_iter=300, class_weight="balanced").fit(scaler.transform(train_x), labels)
        predicted = model.predict(scaler.transform(test_x))
        return f1_score(test_y, predicted, labels=np.unique(test_y), average="macro")

    with threadpool_limits(limits=1):
        learned = validation_f1(train_y)
        shuffled = validation_f1(np.random.default_rng(0).permutation(train_y))
    assert learned > 0.2 and learned > 2.0 * shuffled, (learned, shuffled)  # 0.26 against 0.11 with seed 0


def test_statistics_are_off_unless_asked_and_bad_ones_are_refused() -> None:
    assert not FeatureStatistics().active
    for name in ("tiny", "default", "full"):
        profile = get_profile(name)
        assert not profile.visual.statistics.active and not profile.audio.statistics.active
        assert profile.face_identity == 0.0
    with pytest.raises(InputError, match="offset_ratio"):
        FeatureStatistics(spread=1.0, offset_ratio=(5.0, 2.0))
    with pytest.raises(InputError, match=r"FeatureStatistics\.massive_dims: must be >= 0, got -1"):
        FeatureStatistics(spread=1.0, massive_dims=-1)


@pytest.mark.slow
def test_default_sized_realistic_corpus_keeps_the_information_layout(tmp_path: Path) -> None:
    root = generate_corpus(tmp_path / "realistic", "realistic", seed=0)
    f1 = {name: value["macro_f1"] for name, value in information_probe(root).items() if isinstance(value, dict)}
    # Pooled probes (no per-video normalisation): visual still beats audio and fusion adds to it.
    assert 0.2 < f1["visual"] < 0.45
    assert f1["audio"] < f1["visual"] - 0.02
    assert f1["fused"] > f1["visual"] + 0.015
    assert f1["audio_window"] > f1["audio"] + 0.03
