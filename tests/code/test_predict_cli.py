"""Reading one video's .npz features, and the train → evaluate → predict commands run as real subprocesses."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from factories import make_record

from exprfusion.core.labels import CLASS_NAMES
from exprfusion.data.annotations import read_submission
from exprfusion.data.corpus import VideoRecord
from exprfusion.data.corpus_writer import CorpusWriter
from exprfusion.inference.predict import predict_video, read_video_npz
from exprfusion.model.artifact import load_model
from exprfusion.model.fusion_config import FusionConfig

CONFIG = FusionConfig.paper(visual_dim=8, audio_dim=6, d_model=16, n_layers=1, n_heads=2)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exprfusion", *args], capture_output=True, text=True, timeout=300)


def video_arrays(n: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    visual = rng.standard_normal((n, 8)).astype(np.float16)
    visual[3:6] = 0  # frames with no face
    return {"visual": visual, "audio": rng.standard_normal((n, 6)).astype(np.float32)}


def test_masks_default_to_nonzero_visual_rows_and_present_audio(tmp_path):
    path = tmp_path / "video.npz"
    np.savez(path, **video_arrays())
    video = read_video_npz(path, CONFIG)
    assert video["face_mask"].dtype == np.bool_ and not video["face_mask"][3:6].any() and video["face_mask"].sum() == 17
    assert video["audio_mask"].all() and video["audio_mask"].shape == (20,)


def test_given_masks_are_kept(tmp_path):
    path = tmp_path / "video.npz"
    face_mask = np.arange(20) % 2 == 0
    np.savez(path, **video_arrays(), face_mask=face_mask, audio_mask=~face_mask)
    video = read_video_npz(path)
    np.testing.assert_array_equal(video["face_mask"], face_mask)
    np.testing.assert_array_equal(video["audio_mask"], ~face_mask)


def _without(name):
    return lambda arrays: {k: v for k, v in arrays.items() if k != name}


BROKEN = {
    "no visual": (_without("visual"), "'visual' is missing"),
    "no audio": (_without("audio"), "'audio' is missing"),
    "visual 1-D": (lambda a: {**a, "visual": a["visual"][:, 0]}, "'visual' must be 2-D"),
    "integer audio": (lambda a: {**a, "audio": a["audio"].astype(np.int32)}, "'audio' must hold floats"),
    "NaN in audio": (lambda a: {**a, "audio": np.where(np.arange(20)[:, None] == 4, np.nan, a["audio"])},
                     r"'audio' holds NaN or infinite values \(first at frame 5\)"),
    "audio too short": (lambda a: {**a, "audio": a["audio"][:15]}, "'audio' has 15 frames, 'visual' has 20"),
    "visual too wide": (lambda a: {**a, "visual": np.zeros((20, 9), np.float32)}, "'visual' has 9 values per frame"),
    "integer face mask": (lambda a: {**a, "face_mask": np.ones(20, np.int64)}, "'face_mask' must be bool"),
    "short audio mask": (lambda a: {**a, "audio_mask": np.ones(19, bool)}, r"'audio_mask' must have shape \(20,\)"),
    "misspelt mask": (lambda a: {**a, "face_masks": np.ones(20, bool)}, r"unexpected arrays \['face_masks'\]"),
    "object array": (lambda a: {**a, "visual": np.array([None] * 20, dtype=object)}, "'visual' cannot be read"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BROKEN))
def test_npz_problems_name_the_file_and_the_array(tmp_path, case):
    change, message = BROKEN[case]
    path = tmp_path / "broken.npz"
    np.savez(path, **change(video_arrays()))
    with pytest.raises(ValueError, match=rf"broken\.npz: .*{message}"):
        read_video_npz(path, CONFIG)


def test_files_that_are_not_npz_archives(tmp_path):
    single = tmp_path / "single.npy"
    np.save(single, np.zeros((3, 8)))
    with pytest.raises(ValueError, match=r"single\.npy: expected an \.npz archive"):
        read_video_npz(single)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match=r"junk\.npz: not an \.npz archive"):
        read_video_npz(junk)
    with pytest.raises(FileNotFoundError, match=r"missing\.npz: features file not found"):
        read_video_npz(tmp_path / "missing.npz")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A tiny corpus and the model `exprfusion train` writes for it (one epoch)."""
    root = tmp_path_factory.mktemp("cli")
    with CorpusWriter(root / "corpus") as writer:
        for i in range(3):
            writer.add(make_record(f"t{i}", "train", n=50, seed=i))
        writer.add(make_record("val_a", "validation", n=60, seed=10))
        writer.add(make_record("val_b", "validation", n=30, seed=11))
        writer.add(make_record("test_a", "test", n=25, seed=12))
    result = run_cli(
        "train", "--corpus", str(root / "corpus"), "--out", str(root / "models" / "model.pt"),
        "--run-dir", str(root / "run"), "--epochs", "1", "--d-model", "16", "--n-layers", "1", "--n-heads", "2",
        "--window", "16", "--batch-size", "8", "--lr", "0.003", "--seed", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return root, result


def test_train_prints_epochs_and_writes_the_artefact(workspace):
    root, result = workspace
    assert "epoch 1/1" in result.stderr and "best epoch 1 on the holdout split: macro-F1" in result.stderr
    assert "validation: macro-F1" in result.stderr
    model, inference, metadata = load_model(root / "models" / "model.pt")
    assert (model.config.d_model, model.config.n_layers, model.config.visual_dim) == (16, 1, 8)
    assert (inference.window, inference.stride) == (16, 8), "inference windows half a window apart"
    assert metadata["best_epoch"] == 0 and set(metadata["best_metrics"]) >= {"macro_f1", "accuracy"}
    assert metadata["train_config"]["seed"] == 1 and len(metadata["corpus_hash"]) == 64
    assert (root / "run" / "checkpoint.pt").is_file()


def test_evaluate_command_writes_the_reports(workspace):
    root, _ = workspace
    model, reports = root / "models" / "model.pt", root / "reports"
    result = run_cli("evaluate", "--model", str(model), "--corpus", str(root / "corpus"), "--out", str(reports))
    assert result.returncode == 0, result.stderr
    metrics = json.loads((reports / "evaluation.json").read_text())
    assert json.loads((reports / "metrics.json").read_text())["macro_f1"] == round(metrics["macro_f1"], 4)
    assert list(metrics["robustness"]) == ["0.0", "0.25", "0.5", "0.75", "1.0"]
    assert "robustness_auc" in result.stderr and f"{metrics['macro_f1']:.4f}" in result.stderr
    for name in ("confusion_matrix.png", "per_class_f1.png", "robustness.png", "timeline_val_a.png"):
        assert (reports / name).stat().st_size > 5_000, name


def test_predict_features_to_csv(workspace, tmp_path):
    root, _ = workspace
    features = tmp_path / "video.npz"
    np.savez(features, **video_arrays(n=37))
    out = tmp_path / "labels.csv"
    result = run_cli("predict", "--model", str(root / "models" / "model.pt"), "--features", str(features),
                     "--out", str(out), "--probabilities")  # fmt: skip
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out)
    assert list(table.columns) == ["frame", "label", "class", *(f"p_{name}" for name in CLASS_NAMES)]
    assert table["frame"].tolist() == list(range(1, 38))
    assert (table["class"] == [CLASS_NAMES[label] for label in table["label"]]).all()
    np.testing.assert_allclose(table.filter(like="p_").sum(axis=1), 1.0, atol=1e-4)


def test_predict_corpus_split_to_submission(workspace, tmp_path):
    root, _ = workspace
    out = tmp_path / "submission.txt"
    result = run_cli("predict", "--model", str(root / "models" / "model.pt"), "--corpus", str(root / "corpus"),
                     "--split", "test", "--submission", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    submitted = read_submission(out)
    assert list(submitted) == ["test_a"] and submitted["test_a"].shape == (25,)


def test_predict_cli_labels_equal_predict_video_in_process(workspace, tmp_path):
    """The CSV of `exprfusion predict --features` holds the labels predict_video gives for the same arrays."""
    root, _ = workspace
    arrays = video_arrays(n=37, seed=5)
    face_mask = np.any(arrays["visual"] != 0, axis=1)  # frames 4-6 have no face
    audio_mask = np.ones(37, dtype=bool)
    audio_mask[20:25] = False
    features = tmp_path / "video.npz"
    np.savez(features, **arrays, face_mask=face_mask, audio_mask=audio_mask)
    out = tmp_path / "labels.csv"
    result = run_cli("predict", "--model", str(root / "models" / "model.pt"), "--features", str(features),
                     "--out", str(out), "--probabilities", "--device", "cpu")  # fmt: skip
    assert result.returncode == 0, result.stderr

    model, inference, _ = load_model(root / "models" / "model.pt")
    labels, probabilities = predict_video(model, inference, arrays["visual"], arrays["audio"], face_mask, audio_mask)
    table = pd.read_csv(out)
    assert table["frame"].tolist() == list(range(1, 38))
    np.testing.assert_array_equal(table["label"].to_numpy(), labels)
    # The probabilities too (written with 6 decimals): a model that predicts one class everywhere still differs
    # frame by frame here, so the comparison is not vacuous.
    np.testing.assert_allclose(table.filter(like="p_").to_numpy(), probabilities, rtol=0, atol=1e-6)
    assert np.ptp(probabilities, axis=0).max() > 1e-3, "the probabilities vary over the frames"


def _no_face_test_corpus(root):
    """Test-split videos with frames without a face: a stretch at each end, a whole video, a video shorter than a
    window; widths as the workspace model's (8, 6)."""
    rng = np.random.default_rng(3)
    videos = {
        "ends_left": np.r_[np.zeros(7, bool), np.ones(30, bool), np.zeros(6, bool)],
        "ends_right": np.r_[np.ones(20, bool), np.zeros(9, bool), np.ones(4, bool)],
        "never": np.zeros(26, bool),
        "short": np.array([False, True, False, True, True]),
    }
    with CorpusWriter(root) as writer:
        for name, faces in videos.items():
            n = len(faces)
            writer.add(
                VideoRecord(
                    name=name,
                    split="test",
                    fps=30.0,
                    visual=rng.standard_normal((n, 8)).astype(np.float16) * faces[:, None],
                    audio=rng.standard_normal((n, 6)).astype(np.float16),
                    face_mask=faces,
                    audio_mask=np.ones(n, bool),
                    labels=np.full(n, -1),
                )
            )
    return root


def test_submission_lists_every_frame_of_every_video_no_face_frames_included(workspace, tmp_path):
    root, _ = workspace
    corpus = _no_face_test_corpus(tmp_path / "corpus")
    out = tmp_path / "submission.txt"
    result = run_cli("predict", "--model", str(root / "models" / "model.pt"), "--corpus", str(corpus),
                     "--split", "test", "--submission", str(out), "--device", "cpu")  # fmt: skip
    assert result.returncode == 0, result.stderr

    # The corpus's own record of what must be listed: frame counts from the manifest, face masks from their files.
    manifest = pd.read_parquet(corpus / "manifest.parquet")
    n_frames = dict(zip(manifest["video"], manifest["n_frames"], strict=True))
    faces = {video: np.load(corpus / "features" / "face_mask" / f"{video}.npy") for video in n_frames}
    with out.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["image_location", *CLASS_NAMES]
    listed: dict[str, dict[int, int]] = {}
    for location, label in rows[1:]:
        video, image = location.split("/")
        listed.setdefault(video, {})[int(image.removesuffix(".jpg"))] = int(label)
    assert len(rows) - 1 == sum(n_frames.values()), "one row per frame, none twice"
    assert sorted(listed) == sorted(n_frames)
    no_face_rows = 0
    for video, n in n_frames.items():
        assert sorted(listed[video]) == list(range(1, n + 1)), video
        assert all(0 <= label <= 7 for label in listed[video].values()), video
        for frame in np.flatnonzero(~faces[video]) + 1:
            assert 0 <= listed[video][int(frame)] <= 7, f"{video} frame {frame} (no face)"
            no_face_rows += 1
    assert no_face_rows == 7 + 6 + 9 + 26 + 2


def test_bad_npz_exits_2_with_a_clear_message_and_no_output(workspace, tmp_path):
    root, _ = workspace
    features = tmp_path / "bad.npz"
    np.savez(features, visual=np.zeros((10, 8), np.float32))
    out = tmp_path / "labels.csv"
    result = run_cli("predict", "--model", str(root / "models" / "model.pt"), "--features", str(features),
                     "--out", str(out))  # fmt: skip
    assert result.returncode == 2
    assert "bad.npz: array 'audio' is missing" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".labels.csv*"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ([], "not neither"),
        (["--features", "a.npz", "--corpus", "c"], "not both"),
        (["--features", "a.npz"], "--features needs --out"),
        (["--corpus", "c"], "--corpus needs --submission"),
    ],
)
def test_predict_needs_one_clear_target(tmp_path, options, message):
    result = run_cli("predict", "--model", str(tmp_path / "model.pt"), *options)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_train_on_a_missing_corpus_is_a_clear_error(tmp_path):
    result = run_cli("train", "--corpus", str(tmp_path / "nothing"), "--out", str(tmp_path / "model.pt"))
    assert result.returncode == 2 and "manifest.parquet is missing" in result.stderr
    assert not (tmp_path / "model.pt").exists()


def test_a_one_frame_video_is_read(tmp_path):
    path = tmp_path / "one.npz"
    np.savez(path, visual=np.ones((1, 8), np.float32), audio=np.zeros((1, 6), np.float32))
    video = read_video_npz(path, CONFIG)
    assert video["face_mask"].tolist() == [True] and video["audio_mask"].tolist() == [True]
