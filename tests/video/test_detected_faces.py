"""Train on raw videos, serve raw videos: ``extract --detect-faces`` and ``predict --video`` crop and embed alike."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner
from video.video_factories import BLANK_FRAMES, N_FRAMES, tiny_extract_settings, write_face_video

from exprfusion.cli import app
from exprfusion.data.annotations import EXPR_HEADER
from exprfusion.data.corpus import Corpus
from exprfusion.inference.predict import predict_video
from exprfusion.model.artifact import load_model, save_model
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.sources.extract.build import extract_corpus
from exprfusion.sources.extract.checkpoints import describe_checkpoint
from exprfusion.sources.extract.face_video import video_faces
from exprfusion.sources.extract.faces import load_detector
from exprfusion.sources.extract.settings import MediaSources
from exprfusion.sources.extract.visual import FaceEncoder
from exprfusion.training.train import train_model, training_metadata
from exprfusion.training.train_config import TrainConfig
from exprfusion.video.prediction import VideoFeatureExtractor, extractor_of
from exprfusion.video.video_file import predict_video_path

VIDEOS = {"raw1": "train", "raw2": "train", "raw3": "train", "raw4": "validation"}


@pytest.fixture(scope="module")
def raw_corpus(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> tuple[Path, Path]:
    """Four face videos with annotations and no cropped_aligned tree, extracted with --detect-faces; (root, corpus)."""
    root = tmp_path_factory.mktemp("raw")
    rng = np.random.default_rng(0)
    for name, split in VIDEOS.items():
        folder = root / "EXPR_Recognition_Challenge" / {"train": "Train_Set", "validation": "Validation_Set"}[split]
        folder.mkdir(parents=True, exist_ok=True)
        labels = rng.integers(0, 8, N_FRAMES)
        (folder / f"{name}.txt").write_text(EXPR_HEADER + "\n" + "\n".join(map(str, labels)) + "\n")
        (root / "videos").mkdir(exist_ok=True)
        write_face_video(root / "videos" / f"{name}.mp4")
    settings = tiny_extract_settings(tiny_models)
    arguments = [
        "extract", "--detect-faces",
        "--annotations", str(root / "EXPR_Recognition_Challenge"), "--videos", str(root / "videos"),
        "--out", str(root / "corpus"),
        "--visual-model", settings.visual.model, "--visual-batch-size", str(settings.visual.batch_size),
        "--audio-model", settings.audio.model, "--audio-chunk-seconds", str(settings.audio.chunk_seconds),
        "--audio-context-seconds", str(settings.audio.context_seconds),
        "--audio-batch-size", str(settings.audio.batch_size), "--workers", "0",
    ]  # fmt: skip
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    return root, root / "corpus"


@pytest.fixture(scope="module")
def raw_model(raw_corpus: tuple[Path, Path]) -> Path:
    """The fusion model trained on the raw-video corpus, saved as the train stage saves it."""
    corpus = Corpus(raw_corpus[1])
    config = TrainConfig(epochs=1, batch_size=4, window=8, stride=4, eval_stride=4, median_kernel=3, device="cpu",
                         selection="validation")  # fmt: skip
    result = train_model(corpus, FusionConfig.paper(d_model=16, n_layers=1, n_heads=2), config)
    return save_model(
        raw_corpus[0] / "model.pt", result.model, config.inference(), training_metadata(result, config, corpus)
    )


def test_the_corpus_records_the_detector_and_finds_the_drawn_faces(raw_corpus):
    corpus = Corpus(raw_corpus[1])
    assert corpus.extractor["faces"] == {"cropper": "detect", "detector": "haar", "crop_size": 112, "crop_margin": 0.25}
    record = corpus.load("raw1")
    np.testing.assert_array_equal(record.face_mask, ~np.isin(np.arange(N_FRAMES), BLANK_FRAMES))


def test_served_features_are_the_training_features_byte_for_byte(raw_corpus, raw_model):
    model, inference, metadata = load_model(raw_model)
    assert metadata["extractor"]["faces"]["cropper"] == "detect"  # the artefact says which cropper trained it
    extractor = VideoFeatureExtractor(model.config, extractor_of(metadata), device="cpu")
    assert extractor.warnings == ()  # served with the crops it was trained on
    for name in VIDEOS:
        served = extractor.extract(raw_corpus[0] / "videos" / f"{name}.mp4")
        trained = Corpus(raw_corpus[1]).load(name)
        assert trained.visual[trained.face_mask].std(axis=0).max() > 0  # real, varying features, not zeros
        for array in ("visual", "audio", "face_mask", "audio_mask"):
            expected = np.asarray(getattr(trained, array))
            assert getattr(served, array).tobytes() == expected.tobytes(), (name, array)
    # predict --video labels the video as the model labels its training features.
    warnings: list[str] = []
    written = predict_video_path(raw_model, raw_corpus[0] / "videos" / "raw4.mp4", raw_corpus[0] / "raw4.csv",
                                 device="cpu", warn=warnings.append)  # fmt: skip
    trained = Corpus(raw_corpus[1]).load("raw4")
    labels, _ = predict_video(model, inference, trained.visual, trained.audio, trained.face_mask, trained.audio_mask)
    np.testing.assert_array_equal(pd.read_csv(written[0])["label"].to_numpy(), labels)
    assert warnings == []


def test_a_model_of_cropped_aligned_faces_is_warned_of_detector_crops(raw_model, tiny_artefact):
    """Control: the artefact of a cropped_aligned corpus, or of a record older than the ``faces`` entry, is served
    with a warning naming the skew; so is a detect-trained model served by another detector."""
    model, _, metadata = load_model(tiny_artefact)
    record = extractor_of(metadata)
    assert record["faces"] == {"cropper": "cropped_aligned"}
    older = {key: value for key, value in record.items() if key != "faces"}
    for served in (record, older):
        extractor = VideoFeatureExtractor(model.config, served, device="cpu")
        assert len(extractor.warnings) == 1 and "cropped_aligned" in extractor.warnings[0]
    model, _, metadata = load_model(raw_model)
    other = VideoFeatureExtractor(model.config, extractor_of(metadata), device="cpu",
                                  detector="exprfusion.sources.extract.faces:HaarFaceDetector")  # fmt: skip
    assert other.warnings and "trained on haar detector crops" in other.warnings[0]


def test_detect_faces_refuses_a_media_of_two_people(raw_corpus, tiny_models, tmp_path):
    root = raw_corpus[0]
    annotations = tmp_path / "EXPR_Recognition_Challenge" / "Train_Set"
    annotations.mkdir(parents=True)
    for person in ("duo_left", "duo_right"):
        (annotations / f"{person}.txt").write_text(EXPR_HEADER + "\n" + "\n".join(["1"] * N_FRAMES) + "\n")
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "duo.mp4").write_bytes((root / "videos" / "raw1.mp4").read_bytes())
    sources = MediaSources(tmp_path / "EXPR_Recognition_Challenge", None, tmp_path / "videos")
    settings = dataclasses.replace(tiny_extract_settings(tiny_models), faces="detect")
    with pytest.raises(Exception, match=r"2 annotated people \(duo_left, duo_right\)"):
        extract_corpus(sources, settings, tmp_path / "corpus")


def test_a_video_cut_at_the_annotations_end_gives_the_same_features_for_its_frames(raw_corpus, tiny_models):
    """Training may stop decoding at the annotation's last frame (a few before the video's), serving decodes them all:
    the frames both decode get the same bytes, whichever crops share their last batch."""
    settings = tiny_extract_settings(tiny_models)
    encoder = FaceEncoder(settings.visual, describe_checkpoint(settings.visual.model, None), torch.device("cpu"), None)
    video, detector = raw_corpus[0] / "videos" / "raw2.mp4", load_detector("haar")
    whole = video_faces(video, encoder, detector, batch_size=4)
    for cut in (N_FRAMES - 3, N_FRAMES - 2):  # last batches of 1 and 2 crops where the whole video's hold 4
        part = video_faces(video, encoder, detector, batch_size=4, max_frames=cut)
        assert part.face_mask.size == cut and whole.face_mask.size == N_FRAMES
        assert part.features.tobytes() == whole.features[:cut].tobytes()
