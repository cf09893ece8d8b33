"""``exprfusion predict --video`` (label one video file, write its CSV and/or its overlay video) and ``exprfusion
extract-video`` (write one video file's features as the ``.npz`` that ``/predict_npz``, ``exprfusion predict
--features`` and streaming sessions read)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from exprfusion.core.atomic import atomic_open, atomic_path
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
    face_detector: str | None = None,
    batch_size: int = INFERENCE_BATCH_SIZE,
    device: str = "auto",
    warn: Callable[[str], None] | None = None,
) -> list[Path]:
    """``exprfusion predict --video``: load the artefact and its extractor, label the video, write CSV and/or overlay.

    ``warn`` is called with each of the prediction's warnings (frames lost in decoding, other training crops).

    Returns:
        The files written (the CSV first).
    """
    model, inference, metadata = load_model(model_path, compute_device(device))
    record = extractor_of(metadata, str(model_path))
    extractor = VideoFeatureExtractor(
        model.config, record, visual_model=visual_model, audio_model=audio_model, detector=face_detector, device=device
    )
    prediction = predict_video_file(model, inference, extractor, video, batch_size=batch_size)
    for line in prediction.features.warnings:
        if warn is not None:
            warn(line)
    written = []
    if out_csv is not None:
        written.append(write_video_labels(prediction, out_csv, probabilities))
    if overlay is not None:
        written.append(write_overlay(video, prediction, overlay))
    return written


def extract_video_features(
    model_path: str | os.PathLike[str],
    video: str | os.PathLike[str],
    out_npz: str | os.PathLike[str],
    *,
    visual_model: str | os.PathLike[str] | None = None,
    audio_model: str | os.PathLike[str] | None = None,
    face_detector: str | None = None,
    device: str = "auto",
    warn: Callable[[str], None] | None = None,
) -> Path:
    """``exprfusion extract-video``: one video file's features by the model's own extractor, as an ``.npz`` with
    ``visual`` [n, Dv] and ``audio`` [n, Da] (float16), ``face_mask`` and ``audio_mask`` [n] (bool), written
    atomically: the format ``/predict_npz``, ``exprfusion predict --features`` and ``/stream/{id}/append`` read."""
    model, _, metadata = load_model(model_path, compute_device(device))
    extractor = VideoFeatureExtractor(
        model.config, extractor_of(metadata, str(model_path)), visual_model=visual_model, audio_model=audio_model,
        detector=face_detector, device=device,
    )  # fmt: skip
    with torch.inference_mode():
        features = extractor.extract(video)
    for line in features.warnings:
        if warn is not None:
            warn(line)
    out_npz = Path(out_npz)
    with atomic_path(out_npz) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **features.model_inputs())
    return out_npz
