"""Expectations on the synthetic corpus: determinism, Aff-Wild2 shape, and where the information lies."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from exprfusion.core.labels import CLASS_NAMES, IGNORE_LABEL, SPLITS
from exprfusion.data.corpus import Corpus
from exprfusion.evaluation.information_probe import information_probe, windowed_mean
from exprfusion.sources.synthetic import PROFILES, generate_corpus, get_profile
from exprfusion.sources.synthetic.profiles import ANGER, DISGUST, FEAR, class_prior
from exprfusion.sources.synthetic.sequences import markov_mask, plan_corpus, runs_of

ALLOWED_FPS = {fps for fps, _ in get_profile("default").fps_mix}
RARE = [CLASS_NAMES[c] for c in (ANGER, DISGUST, FEAR)]
COMMON = [name for name in CLASS_NAMES if name not in RARE]


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, keyed by relative path."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def run_lengths(mask: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True in a boolean array."""
    starts, lengths = runs_of(mask)
    return lengths[mask[starts]]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return Corpus(generate_corpus(tmp_path_factory.mktemp("tiny") / "corpus", "tiny", seed=0))


@pytest.fixture(scope="module")
def default_plans() -> list:
    profile = get_profile("default")
    return list(plan_corpus(profile, 0))


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path: Path, tiny: Corpus) -> None:
    again = generate_corpus(tmp_path / "again", "tiny", seed=0)
    other = generate_corpus(tmp_path / "other", "tiny", seed=1)
    reference = file_hashes(tiny.root)
    assert len(reference) > 30
    assert file_hashes(again) == reference
    # Masks may coincide (all True); features and whole videos must not.
    visual = {digest for path, digest in reference.items() if path.startswith("features/visual/")}
    other_visual = {digest for path, digest in file_hashes(other).items() if path.startswith("features/visual/")}
    assert visual and not visual & other_visual
    assert not set(tiny.manifest["sha256"]) & set(Corpus(other).manifest["sha256"])


def test_parallel_rendering_writes_the_same_bytes(tmp_path: Path, tiny: Corpus) -> None:
    parallel = generate_corpus(tmp_path / "parallel", "tiny", seed=0, workers=2)
    assert file_hashes(parallel) == file_hashes(tiny.root)


def test_manifest_has_the_profile_splits_and_sizes(tiny: Corpus) -> None:
    profile = PROFILES["tiny"]
    manifest = tiny.manifest
    for split in SPLITS:
        assert (manifest["split"] == split).sum() == profile.split_size(split).videos
    assert manifest["n_frames"].between(150, 500).all()
    assert (manifest["visual_dim"] == 64).all() and (manifest["audio_dim"] == 64).all()
    assert set(manifest["fps"]) <= ALLOWED_FPS
    assert (manifest.loc[manifest["split"] == "test", "n_labelled"] == 0).all()
    assert (manifest.loc[manifest["split"] != "test", "n_labelled"] > 0).all()


def test_two_person_pair_shares_media_and_audio(tiny: Corpus) -> None:
    left = [video for video in tiny.videos() if video.endswith("_left")]
    assert len(left) == 1
    left_record, right_record = tiny.load(left[0]), tiny.load(left[0].replace("_left", "_right"))
    assert left_record.media == right_record.media == left[0].removesuffix("_left")
    assert left_record.subject != right_record.subject
    assert np.array_equal(left_record.audio, right_record.audio)
    assert not np.array_equal(left_record.visual, right_record.visual)
    assert not np.array_equal(left_record.labels, right_record.labels)


def test_media_without_audio_has_zero_audio_and_a_false_mask(tiny: Corpus) -> None:
    silent = tiny.manifest[tiny.manifest["audio_rate"] == 0.0]["video"].tolist()
    assert silent
    record = tiny.load(silent[0])
    assert not record.audio.any() and not record.audio_mask.any()
    others = tiny.manifest[tiny.manifest["audio_rate"] == 1.0]["video"].tolist()
    assert others and tiny.load(others[0]).audio.any()


def test_features_look_like_embeddings(tiny: Corpus) -> None:
    record = tiny.load(tiny.videos("train")[0])
    faces = np.asarray(record.visual[record.face_mask], dtype=np.float32)
    assert record.visual.dtype == np.float16 and np.isfinite(faces).all()
    assert 0.3 < float(np.median(faces.std(axis=0))) < 3.0
    assert np.abs(faces).max() < 30.0


def test_missing_faces_come_in_bursts_of_zero_rows(tmp_path: Path) -> None:
    corpus = Corpus(generate_corpus(tmp_path / "occluded", "tiny", seed=2, missing_face_rate=0.3))
    bursts = []
    for video in corpus.videos():
        record = corpus.load(video)
        missing = ~np.asarray(record.face_mask)
        assert not np.asarray(record.visual[missing]).any()
        assert np.abs(np.asarray(record.visual[~missing], dtype=np.float32)).sum(axis=1).min() > 0
        bursts.extend(run_lengths(missing))
    assert len(bursts) >= 5 and np.mean(bursts) > 2.0
    assert corpus.manifest["face_rate"].min() < 0.9  # heavy occlusion shows


def test_default_rates_of_missing_faces_silence_and_ignore_spans(default_plans: list) -> None:
    people = [(plan, person) for plan in default_plans for person in plan.people]
    labelled = np.concatenate([person.labels for _, person in people]) != IGNORE_LABEL
    face = np.concatenate([person.face_mask for _, person in people])
    assert 0.003 < (~face[labelled]).mean() < 0.05
    per_video = np.array([1.0 - person.face_mask.mean() for _, person in people])
    assert np.median(per_video) < 0.01 and per_video.max() > 0.08  # most videos clean, a few bad
    ignored = [person.labels == IGNORE_LABEL for plan, person in people if plan.split != "test"]
    assert 0.005 < np.concatenate(ignored).mean() < 0.08
    assert max(run_lengths(mask).mean() for mask in ignored if mask.any()) > 10
    single = [person for plan, person in people if plan.has_audio and len(plan.people) == 1]
    silence = 1.0 - np.concatenate([person.speaking for person in single]).mean()
    assert 0.25 < silence < 0.45


def test_two_people_take_turns_speaking(default_plans: list) -> None:
    pairs = [plan for plan in default_plans if len(plan.people) == 2]
    assert pairs
    for plan in pairs:
        left, right = (person.speaking for person in plan.people)
        assert not (left & right).any()
        assert left.mean() > 0.1 and right.mean() > 0.1


def test_expressions_fade_in_and_out_at_segment_boundaries(default_plans: list) -> None:
    person = default_plans[0].people[0]
    starts, _ = runs_of(person.expression)
    boundary = np.zeros(person.expression.size, dtype=bool)
    boundary[starts[1:]] = True
    assert person.intensity[boundary].mean() < 0.5 * person.intensity[~boundary].mean()


def test_subjects_recur_within_a_split_but_never_cross_splits(default_plans: list) -> None:
    subjects = {
        split: [p.subject for plan in default_plans if plan.split == split for p in plan.people] for split in SPLITS
    }
    assert not set(subjects["train"]) & set(subjects["validation"])
    assert not set(subjects["train"]) & set(subjects["test"])
    assert len(set(subjects["train"])) < len(subjects["train"])


@pytest.mark.parametrize("profile_name, tolerance", [("default", 0.03), ("full", 0.01)])
def test_class_shares_follow_the_split_priors(profile_name: str, tolerance: float) -> None:
    profile = get_profile(profile_name)
    counts = {split: np.zeros(len(CLASS_NAMES)) for split in ("train", "validation")}
    frames_per_video = {split: [] for split in counts}
    dominance = []
    for plan in plan_corpus(profile, 0):
        if plan.split == "test":
            continue
        for person in plan.people:
            labels = person.labels[person.labels != IGNORE_LABEL]
            video_counts = np.bincount(labels, minlength=len(CLASS_NAMES))
            counts[plan.split] += video_counts
            frames_per_video[plan.split].append(labels.size)
            dominance.append(np.sort(video_counts)[-3:].sum() / labels.size)
    for split, split_counts in counts.items():
        shares = split_counts / split_counts.sum()
        assert np.abs(shares - class_prior(split)).max() < tolerance, (split, shares.round(3))
        assert split_counts.sum() == pytest.approx(profile.split_size(split).labelled_frames, rel=0.1)
    assert np.mean(dominance) > 0.75  # each video mostly shows a few classes
    if profile_name == "full":
        assert np.mean(frames_per_video["validation"]) > np.mean(frames_per_video["train"])


def test_markov_mask_rate_and_run_length() -> None:
    mask = markov_mask(200_000, 0.1, 20.0, np.random.default_rng(0))
    assert mask.mean() == pytest.approx(0.1, abs=0.02)
    assert run_lengths(mask).mean() == pytest.approx(20.0, rel=0.15)
    assert not markov_mask(50, 0.0, 5.0, np.random.default_rng(0)).any()


def test_windowed_mean_skips_invalid_frames() -> None:
    values = np.array([[1.0], [100.0], [3.0], [5.0]])
    valid = np.array([True, False, True, True])
    result = windowed_mean(values, valid, half_width=1)
    assert result[:, 0].tolist() == [1.0, 2.0, 4.0, 4.0]


def test_progress_and_dimension_overrides(tmp_path: Path) -> None:
    calls = []
    root = generate_corpus(
        tmp_path / "c", "tiny", seed=3, visual_dim=16, audio_dim=24, progress=lambda d, t: calls.append((d, t))
    )
    manifest = Corpus(root).manifest
    assert calls == [(i, len(manifest)) for i in range(1, len(manifest) + 1)]
    assert set(manifest["visual_dim"]) == {16} and set(manifest["audio_dim"]) == {24}
    with pytest.raises(ValueError, match="unknown synthetic profile"):
        generate_corpus(tmp_path / "d", "huge")


@pytest.mark.slow
def test_information_is_laid_out_as_the_paper_claims(tmp_path: Path) -> None:
    root = generate_corpus(tmp_path / "default", "default", seed=0)
    manifest = Corpus(root).manifest
    for split in ("train", "validation"):
        counts = manifest.loc[manifest["split"] == split, [f"count_{name}" for name in CLASS_NAMES]].sum()
        assert np.abs(counts.to_numpy() / counts.sum() - class_prior(split)).max() < 0.03
    probe = information_probe(root)
    f1 = {name: probe[name]["macro_f1"] for name in probe if isinstance(probe[name], dict)}
    assert 0.25 < f1["visual"] < 0.45
    assert f1["audio"] < f1["visual"] - 0.05
    assert f1["fused"] > f1["visual"] + 0.015
    assert f1["visual_window"] > f1["visual"] + 0.05
    assert f1["fused_window"] > f1["fused"] + 0.05
    per_class = probe["fused"]["per_class_f1"]
    rare, common = np.mean([per_class[c] for c in RARE]), np.mean([per_class[c] for c in COMMON])
    assert 0.0 < rare < common
