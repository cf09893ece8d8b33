"""Offline prediction: frame labels for one video's features (``.npz``) or a submission file for a corpus split.

Every frame gets a label, frames with no face or no audio included: the model reads their neighbours, and the
challenge scores every frame listed in a submission.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from torch import Tensor

from exprfusion.core.atomic import atomic_open
from exprfusion.core.devices import resolve_device
from exprfusion.core.errors import InputError, MissingInputError
from exprfusion.core.labels import CLASS_NAMES
from exprfusion.data.annotations import write_submission
from exprfusion.data.corpus import Corpus
from exprfusion.data.split_tensors import load_split
from exprfusion.inference.feature_arrays import read_video_npz_source
from exprfusion.inference.voting import softmax
from exprfusion.inference.window_logits import INFERENCE_BATCH_SIZE, VideoFrames, predict_frames, predict_split
from exprfusion.model.artifact import InferenceSettings, load_model
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.fusion_transformer import FusionTransformer


def check_feature_widths(config: FusionConfig, visual_dim: int, audio_dim: int, source: str) -> None:
    """Raise an InputError naming ``source`` when its feature widths differ from those the model was trained on."""
    for name, width, expected in (("visual", visual_dim, config.visual_dim), ("audio", audio_dim, config.audio_dim)):
        if width != expected:
            raise InputError(f"{source}: {name} features have {width} values per frame, the model expects {expected}")


def predict_video(
    model: FusionTransformer,
    inference: InferenceSettings,
    visual: np.ndarray | Tensor,
    audio: np.ndarray | Tensor,
    face_mask: np.ndarray | Tensor,
    audio_mask: np.ndarray | Tensor,
    batch_size: int = INFERENCE_BATCH_SIZE,
    precision: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Label every frame of one video: overlapping windows, logit soft voting, argmax, median filter.

    Args:
        model: a trained model (its device is used).
        inference: window, stride and median kernel (from the model artefact).
        visual: ``[n, Dv]`` face features (rows without a face may hold anything: they are masked).
        audio: ``[n, Da]`` audio features aligned to the frames.
        face_mask: bool ``[n]``, True where a face was found.
        audio_mask: bool ``[n]``, True where audio is present.
        batch_size: windows per forward pass.
        precision: autocast of the forward passes (``auto``, ``fp32`` or ``bf16``).

    Returns:
        ``(labels, probabilities)``: int64 ``[n]`` classes and float32 ``[n, 8]`` softmax of the voted logits
        (before the median filter).
    """
    frames = VideoFrames.from_arrays(visual, audio, face_mask, audio_mask)
    check_feature_widths(model.config, int(frames.visual.shape[1]), int(frames.audio.shape[1]), "video")
    index = frames.window_index(inference.window, inference.stride)
    prediction = predict_frames(model, frames, index, inference.median_kernel, batch_size, precision)
    return prediction.labels, softmax(prediction.frame_logits).astype(np.float32)


def read_video_npz(
    path: str | os.PathLike[str], config: FusionConfig | None = None, *, allow_missing_stream: bool = False
) -> dict[str, np.ndarray]:
    """Read and check one video's features from an ``.npz`` archive.

    The archive holds ``visual`` float ``[n, Dv]`` and ``audio`` float ``[n, Da]``, and optionally ``face_mask``
    bool ``[n]`` (default: rows of ``visual`` that are not all zero) and ``audio_mask`` bool ``[n]`` (default: all
    True). With ``config`` the widths must match the model's; with ``allow_missing_stream`` (and ``config``) one of
    the two feature arrays may be left out. The checks are those of the service's endpoints
    (:mod:`exprfusion.inference.feature_arrays`).

    Returns:
        ``{"visual", "audio", "face_mask", "audio_mask"}`` arrays.

    Raises:
        MissingInputError: no file at ``path``.
        InputError: not an ``.npz`` archive, an unknown or missing array, wrong shape, dtype or width, NaN; the
            message names the file and the array.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path}: features file not found")
    return read_video_npz_source(path, str(path), config=config, allow_missing_stream=allow_missing_stream)


def predict_npz(
    model_path: str | os.PathLike[str],
    npz_path: str | os.PathLike[str],
    out_csv: str | os.PathLike[str],
    probabilities: bool = False,
    batch_size: int = INFERENCE_BATCH_SIZE,
    device: str = "auto",
) -> Path:
    """Label every frame of one video's ``.npz`` features and write a CSV atomically.

    Columns: ``frame`` (1-based), ``label`` (0..7), ``class`` (its name) and, with ``probabilities``, one
    ``p_<Class>`` column per class. Nothing is written when the model or the features are invalid.
    """
    model, inference, _ = load_model(model_path, resolve_device(device))
    video = read_video_npz(npz_path, model.config)
    labels, probs = predict_video(model, inference, **video, batch_size=batch_size)
    table = pd.DataFrame(
        {"frame": np.arange(1, labels.size + 1), "label": labels, "class": np.asarray(CLASS_NAMES)[labels]}
    )
    if probabilities:
        for column, name in enumerate(CLASS_NAMES):
            table[f"p_{name}"] = probs[:, column]
    out_csv = Path(out_csv)
    with atomic_open(out_csv) as handle:
        table.to_csv(handle, index=False, float_format="%.6f")
    return out_csv


def write_split_submission(
    model_path: str | os.PathLike[str],
    corpus: Corpus | str | os.PathLike[str],
    split: str,
    out_path: str | os.PathLike[str],
    *,
    batch_size: int = INFERENCE_BATCH_SIZE,
    device: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Label every frame of every video of a corpus split and write the official submission file atomically.

    The split is predicted in one batched pass (windows never cross videos, so this equals
    :func:`predict_video` per video).
    """
    model, inference, _ = load_model(model_path, resolve_device(device))
    corpus = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
    if progress:
        progress(0, 2)
    data = load_split(corpus, split)
    check_feature_widths(model.config, int(data.visual.shape[1]), int(data.audio.shape[1]), str(corpus.root))
    if progress:
        progress(1, 2)
    prediction = predict_split(model, data, inference, batch_size)
    videos = {video: prediction.labels[data.video_rows(number)] for number, video in enumerate(data.videos)}
    write_submission(out_path, videos)
    if progress:
        progress(2, 2)
    return Path(out_path)
