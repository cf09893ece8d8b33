"""A video file to labels: the real CLI on an mp4 of a drawn face, with the tiny models as the extractor."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from video.video_factories import BLANK_FRAMES, FPS, FRAME_SIZE, N_FRAMES, save_tiny_artefact, write_truncated_video

from exprfusion.core.errors import InputError, MissingInputError
from exprfusion.core.labels import CLASS_NAMES
from exprfusion.inference.predict import predict_video
from exprfusion.model.artifact import load_model
from exprfusion.video.overlay import CLASS_COLOURS, STRIP_HEIGHT, draw_frame, legend, panel_height, timeline_strip
from exprfusion.video.prediction import VideoFeatureExtractor, VideoFeatures, VideoPrediction, extractor_of
from exprfusion.video.video_file import predict_video_path


def test_one_label_per_frame_with_times_and_blanked_faces_masked(cli_run):
    table = pd.read_csv(cli_run[0])
    assert table["frame"].tolist() == list(range(1, N_FRAMES + 1))  # one row per frame written into the mp4
    assert table["label"].between(0, 7).all()
    np.testing.assert_allclose(table["time_s"], np.arange(N_FRAMES) / FPS, atol=1e-6)  # 10 fps, by construction
    assert (table["fps"] == FPS).all()
    blank = np.isin(np.arange(N_FRAMES), BLANK_FRAMES)
    np.testing.assert_array_equal(table["face"].to_numpy(), ~blank)  # face found exactly where it was drawn
    assert table.loc[blank, "face_x"].isna().all() and table.loc[~blank, "face_x"].notna().all()
    assert table["audio"].all()
    np.testing.assert_allclose(table.filter(like="p_").sum(axis=1), 1.0, atol=1e-5)


def test_overlay_decodes_with_the_same_frame_count(cli_run):
    with av.open(str(cli_run[1])) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == N_FRAMES
    assert frames[0].shape == (FRAME_SIZE[1] + panel_height(FRAME_SIZE[0]), FRAME_SIZE[0], 3)


def test_overlay_label_is_24_px_with_a_legend_of_every_class_and_the_time():
    n, happiness = 40, CLASS_NAMES.index("Happiness")
    features = VideoFeatures(np.zeros((n, 1)), np.zeros((n, 1)), np.zeros(n, bool), np.ones(n, bool), 10.0,
                             np.arange(n) / 10.0, (None,) * n)  # fmt: skip
    prediction = VideoPrediction(np.full(n, happiness), np.zeros((n, 8)), features)
    width, height = FRAME_SIZE
    panel = np.concatenate([timeline_strip(prediction.labels, width), legend(width)])
    frame = draw_frame(np.zeros((height, width, 3), np.uint8), panel, prediction, 25)
    in_colour = (frame[:height] == CLASS_COLOURS[happiness]).all(axis=2)
    rows = np.flatnonzero(in_colour[:, : width // 2].any(axis=1))  # the label at the top left, in its colour
    assert rows.size and rows.max() - rows.min() + 1 >= 17  # the cap height of a 24-px font (the old label: 11 px)
    key = frame[height + STRIP_HEIGHT :].reshape(-1, 3)
    assert all((key == colour).all(axis=1).any() for colour in CLASS_COLOURS)  # a swatch of every class
    corner = frame[height - 30 : height, width // 2 :]  # the time, "0:02.5", white at the bottom right
    assert (corner == 255).all(axis=2).sum() > 20
    strip = frame[height : height + STRIP_HEIGHT, :, :]
    assert ((strip == 0).all(axis=2).all(axis=0)).sum() == 3  # the cursor: 3 black columns


def test_labels_equal_the_offline_path_on_the_same_features(cli_run, tiny_artefact, face_video):
    """The video path adds decoding and extraction only: its features through predict_video give its labels."""
    model, inference, metadata = load_model(tiny_artefact)
    extractor = VideoFeatureExtractor(model.config, extractor_of(metadata), device="cpu")
    features = extractor.extract(face_video)
    assert features.visual.shape == (N_FRAMES, 32) and features.audio.shape == (N_FRAMES, 16)
    assert not features.visual[list(BLANK_FRAMES)].any()  # no face: zero rows, as in a corpus
    labels, _ = predict_video(model, inference, **features.model_inputs())
    np.testing.assert_array_equal(pd.read_csv(cli_run[0])["label"].to_numpy(), labels)


def test_model_of_other_features_is_refused_naming_both(tmp_path, tiny_models, face_video):
    wide = save_tiny_artefact(tmp_path / "wide.pt", tiny_models, visual_dim=48)
    with pytest.raises(InputError, match=r"width 48.*beit.* gives 32"):
        predict_video_path(wide, face_video, tmp_path / "x.csv", device="cpu")
    synthetic = save_tiny_artefact(tmp_path / "synthetic.pt", tiny_models, extractor=False)
    with pytest.raises(InputError, match="no extractor record"):
        predict_video_path(synthetic, face_video, tmp_path / "y.csv", device="cpu")
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "y.csv").exists()


def test_moved_checkpoint_is_named_and_can_be_given(tmp_path, tiny_models, face_video):
    moved = tmp_path / "models"
    shutil.copytree(tiny_models, moved)
    artefact = save_tiny_artefact(tmp_path / "model.pt", moved)
    shutil.rmtree(moved / "wavlm")
    with pytest.raises(MissingInputError, match=r"audio model .*wavlm: checkpoint not found.*--audio-model"):
        predict_video_path(artefact, face_video, tmp_path / "x.csv", device="cpu")
    written = predict_video_path(
        artefact, face_video, tmp_path / "y.csv", audio_model=tiny_models / "wavlm", device="cpu"
    )
    assert len(pd.read_csv(written[0])) == N_FRAMES
    # An override is still checked: a 48-wide image model does not give the 32 values the model reads.
    wide_beit = tmp_path / "beit48"
    _save_beit(wide_beit, hidden_size=48)
    with pytest.raises(InputError, match=r"width 32.*beit48 gives 48"):
        predict_video_path(
            artefact, face_video, tmp_path / "z.csv", visual_model=wide_beit, audio_model=tiny_models / "wavlm"
        )


def _save_beit(folder: Path, hidden_size: int) -> None:
    from transformers import BeitConfig, BeitImageProcessor, BeitModel

    config = BeitConfig(
        hidden_size=hidden_size, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, image_size=32,
        patch_size=8, use_mean_pooling=True,
    )  # fmt: skip
    BeitModel(config).save_pretrained(folder)
    BeitImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)


def test_a_truncated_video_is_labelled_with_a_warning_naming_declared_and_decoded_frames(tmp_path, tiny_artefact):
    whole, truncated = write_truncated_video(tmp_path / "half.mp4")  # declares 60 frames, holds about half
    csv = tmp_path / "labels.csv"
    result = subprocess.run(
        [sys.executable, "-m", "exprfusion", "predict", "--model", str(tiny_artefact), "--video", str(truncated),
         "--out", str(csv), "--device", "cpu"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    decoded = len(pd.read_csv(csv))
    assert 0 < decoded < 60
    assert f"decoded {decoded} of the 60 frames the file declares" in " ".join(result.stderr.split())
    # Control: the whole file decodes every frame it declares, and nothing is said about lost frames.
    model, _, metadata = load_model(tiny_artefact)
    features = VideoFeatureExtractor(model.config, extractor_of(metadata), device="cpu").extract(whole)
    assert features.decoded_frames == features.declared_frames == 60
    assert not [line for line in features.warnings if "declares" in line or "damaged" in line]
