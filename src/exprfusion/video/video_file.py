"""``exprfusion predict --video``: label one video file and write its CSV and/or its overlay video."""

from __future__ import annotations

import os
from pathlib import Path

from exprfusion.core.atomic import atomic_open
from exprfusion.inference.window_logits import INFERENCE_BATCH_SIZE
from exprfusion.model.artifact import load_model
from exprfusion.sources.extract.checkpoints import compute_device
from exprfusion.video.overlay import write_overlay
from exprfusion.video.prediction import VideoFeatureExtractor, VideoPrediction, extractor_of, predict_video_file


def write_video_labels(
    prediction: VideoPrediction, out_csv: str | os.PathLike[str], probabilities: bool = False
) -> Path:
    """Write :meth:`VideoPrediction.table` as CSV, atomically."""
    out_csv = Path(out_csv)
    with atomic_open(out_csv) as handle:
        prediction.table(probabilities).to_csv(handle, index=False, float_format="%.6f")
    return out_csv


def predict_video_path(
    model_path: str | os.PathLike[str],
    video: str | os.PathLike[str],
    out_csv: str | os.PathLike[str] | None = None,
    *,
    overlay: str | os.PathLike[str] | None = None,
    probabilities: bool = False,
    visual_model: str | os.PathLike[str] | None = None,
    audio_model: str | os.PathLike[str] | None = None,
    face_detector: str = "haar",
    batch_size: int = INFERENCE_BATCH_SIZE,
    device: str = "auto",
) -> list[Path]:
    """``exprfusion predict --video``: load the artefact and its extractor, label the video, write CSV and/or overlay.

    Returns:
        The files written (the CSV first).
    """
    model, inference, metadata = load_model(model_path, compute_device(device))
    record = extractor_of(metadata, str(model_path))
    extractor = VideoFeatureExtractor(
        model.config, record, visual_model=visual_model, audio_model=audio_model, detector=face_detector, device=device
    )
    prediction = predict_video_file(model, inference, extractor, video, batch_size=batch_size)
    written = []
    if out_csv is not None:
        written.append(write_video_labels(prediction, out_csv, probabilities))
    if overlay is not None:
        written.append(write_overlay(video, prediction, overlay))
    return written
