"""From a video file to one expression label per frame: decode, find and crop the face, extract, predict.

The features are made by the extractor the model was trained on: the model artefact's ``metadata["extractor"]``
record (copied from the training corpus, see :mod:`exprfusion.sources.extract.build`) names both checkpoints, the
layers, the pooling, the audio alignment and the face cropper, and the same loaders as ``exprfusion extract`` run them
(:class:`~exprfusion.sources.extract.visual.FaceEncoder`, :class:`~exprfusion.sources.extract.audio.SpeechEncoder`,
:func:`~exprfusion.sources.extract.align.align_at_times`). The faces come from
:func:`~exprfusion.sources.extract.face_video.video_faces`, which also makes the training faces of ``exprfusion
extract --detect-faces``: a model trained that way is served its training features exactly; one trained on the
official ``cropped_aligned`` images is served detector crops, and warned so. Labels then come from
:func:`exprfusion.inference.predict.predict_video` (windows, voting, median filter), so a video file and its features
give the same labels.

Nothing is lost without a word: :attr:`VideoFeatures.warnings` says when fewer frames decode than the file declares (a
truncated or damaged file; the decoded ones are labelled) and when the audio ends before the video.

A model trained on features of no recorded extractor, or whose feature widths differ from the extractor's output, is
refused with a message naming both; so is a checkpoint that cannot be found (``visual_model`` / ``audio_model``
point at a moved folder; the widths are still checked).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from exprfusion.core.errors import InputError, MissingInputError
from exprfusion.core.labels import CLASS_NAMES
from exprfusion.inference.feature_arrays import TooLargeInputError, UnreadableInputError
from exprfusion.inference.predict import predict_video
from exprfusion.inference.window_logits import INFERENCE_BATCH_SIZE
from exprfusion.model.artifact import InferenceSettings
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.fusion_transformer import FusionTransformer
from exprfusion.sources.extract.align import align_at_times
from exprfusion.sources.extract.audio import SpeechEncoder
from exprfusion.sources.extract.checkpoints import compute_device, compute_dtype
from exprfusion.sources.extract.face_video import MediaTooLong, VideoFaces, cropper_of, cropper_warnings, video_faces
from exprfusion.sources.extract.faces import FaceBox, FaceDetector, load_detector
from exprfusion.sources.extract.media import DecodedMedia, MediaError, decode_media
from exprfusion.sources.extract.settings import AudioSettings, VisualSettings
from exprfusion.sources.extract.visual import FaceEncoder


@dataclass(frozen=True)
class VideoFeatures:
    """One video's frame features, as a corpus holds them, with the frame timing and the face boxes."""

    visual: np.ndarray  # (n, Dv) float16, zeros where no face
    audio: np.ndarray  # (n, Da) float16, aligned to the frames
    face_mask: np.ndarray  # (n,) bool
    audio_mask: np.ndarray  # (n,) bool
    fps: float
    frame_times: np.ndarray  # (n,) seconds from the first frame
    boxes: tuple[FaceBox | None, ...]
    declared_frames: int | None = None  # the frames the container declares (None: it declares none)
    warnings: tuple[str, ...] = ()  # what was lost in decoding, or differs from the training faces

    @property
    def decoded_frames(self) -> int:
        """Frames decoded (one label each)."""
        return int(self.face_mask.size)

    def model_inputs(self) -> dict[str, np.ndarray]:
        """The arrays :func:`exprfusion.inference.predict.predict_video` reads."""
        return {"visual": self.visual, "audio": self.audio, "face_mask": self.face_mask, "audio_mask": self.audio_mask}


@dataclass(frozen=True)
class VideoPrediction:
    """Per-frame labels of a video file, with what they were computed from."""

    labels: np.ndarray  # (n,) int64
    probabilities: np.ndarray  # (n, 8) float32, softmax of the voted logits (before the median filter)
    features: VideoFeatures

    def table(self, probabilities: bool = False) -> pd.DataFrame:
        """One row per frame: ``frame`` (1-based), ``time_s``, ``fps``, ``label``, ``class``, ``face``, ``audio``,
        the face box ``face_x, face_y, face_w, face_h`` (empty without a face) and optionally ``p_<Class>``."""
        features = self.features
        boxes = np.array([box.to_list() if box else [np.nan] * 4 for box in features.boxes], dtype=np.float64)
        boxes = boxes.reshape(-1, 4)
        table = pd.DataFrame(
            {
                "frame": np.arange(1, self.labels.size + 1),
                "time_s": np.round(features.frame_times, 6),
                "fps": features.fps,
                "label": self.labels,
                "class": np.asarray(CLASS_NAMES)[self.labels],
                "face": features.face_mask,
                "audio": features.audio_mask,
                **{name: pd.array(boxes[:, i], dtype="Int64") for i, name in enumerate(BOX_COLUMNS)},
            }
        )
        if probabilities:
            for column, name in enumerate(CLASS_NAMES):
                table[f"p_{name}"] = self.probabilities[:, column]
        return table


BOX_COLUMNS = ("face_x", "face_y", "face_w", "face_h")
AUDIO_END_SLACK_S = 0.1  # audio may end this much (or two frames) before the last frame is shown without a warning


def _checkpoint(record: dict[str, Any], override: str | os.PathLike[str] | None, what: str) -> dict[str, Any]:
    """The checkpoint to load for one branch: the recorded one, or the folder that replaces it."""
    option = f"--{what}-model"
    if override is not None:
        folder = Path(override).expanduser()
        if not folder.is_dir():
            raise MissingInputError(f"{option} {override}: model folder not found")
        return {"model": str(folder), "revision": None, "sha256": "given"}  # a set sha256 marks a local folder
    if record.get("sha256") and not Path(record["model"]).expanduser().is_dir():
        raise MissingInputError(
            f"{what} model {record['model']}: checkpoint not found (the model was trained on its features); "
            f"pass {option} with the folder it moved to"
        )
    return {"model": record["model"], "revision": record.get("revision"), "sha256": record.get("sha256")}


def extractor_of(metadata: dict[str, Any], source: str = "the model") -> dict[str, Any]:
    """The artefact's extractor record; a model trained on features of no recorded extractor is an InputError."""
    record = metadata.get("extractor")
    if not isinstance(record, dict) or not {"visual", "audio"} <= record.keys():
        raise InputError(
            f"{source} was trained on features with no extractor record (a synthetic or imported corpus), so no "
            "video can be turned into the features it reads; train it on a corpus made by `exprfusion extract`"
        )
    return record


class VideoFeatureExtractor:
    """The face detector and both feature models of a trained model's extractor record, loaded once.

    Faces come from :func:`~exprfusion.sources.extract.face_video.video_faces`, the function ``exprfusion extract
    --detect-faces`` makes training faces with; :attr:`warnings` says when the model trained on other crops.

    Args:
        config: the model's config (its feature widths are checked against the extractor's).
        record: the extractor record (:func:`extractor_of`).
        visual_model, audio_model: folders replacing the recorded checkpoints (moved checkpoints).
        detector: a :class:`~exprfusion.sources.extract.faces.FaceDetector` or its name for
            :func:`~exprfusion.sources.extract.faces.load_detector`; None: the detector the model's training faces
            were cropped with, else ``haar``.
        device: where the feature models run (``auto``: CUDA when available).
    """

    def __init__(
        self,
        config: FusionConfig,
        record: dict[str, Any],
        *,
        visual_model: str | os.PathLike[str] | None = None,
        audio_model: str | os.PathLike[str] | None = None,
        detector: FaceDetector | str | None = None,
        device: str = "auto",
    ) -> None:
        visual_record, audio_record = record["visual"], record["audio"]
        visual_checkpoint = _checkpoint(visual_record, visual_model, "visual")
        audio_checkpoint = _checkpoint(audio_record, audio_model, "audio")
        self.align = record.get("align", "nearest")
        self.device = compute_device(device)
        dtype = compute_dtype("auto", self.device)
        cropper, batch_sizes = cropper_of(record), record.get("batch_sizes", {})
        self.batch_size = batch_sizes.get("visual", VisualSettings.batch_size)  # as the training features were made
        visual_settings = VisualSettings(
            model=visual_checkpoint["model"], pooling=visual_record.get("pooling", "pooler"),
            layer=visual_record.get("layer"), batch_size=self.batch_size,
        )  # fmt: skip
        audio_settings = AudioSettings(
            model=audio_checkpoint["model"],
            layer=audio_record.get("layer"),
            chunk_seconds=audio_record.get("chunk_seconds", AudioSettings.chunk_seconds),
            context_seconds=audio_record.get("context_seconds", AudioSettings.context_seconds),
            batch_size=batch_sizes.get("audio", AudioSettings.batch_size),
        )
        self.faces = FaceEncoder(visual_settings, visual_checkpoint, self.device, dtype)
        self.speech = SpeechEncoder(audio_settings, audio_checkpoint, self.device, dtype)
        for what, width, expected, model in (
            ("visual", self.faces.dim, config.visual_dim, visual_checkpoint["model"]),
            ("audio", self.speech.dim, config.audio_dim, audio_checkpoint["model"]),
        ):
            if width != expected:
                raise InputError(
                    f"feature mismatch: the model reads {what} features of width {expected}, but the {what} "
                    f"extractor {model} gives {width}; the model was trained on other features"
                )
        if detector is None:
            detector = cropper.get("detector", "haar")
        self.detector = load_detector(detector) if isinstance(detector, str) else detector
        name = detector if isinstance(detector, str) else type(detector).__name__
        self.warnings: tuple[str, ...] = tuple(cropper_warnings(record, name))

    def extract(self, path: str | os.PathLike[str], max_seconds: float | None = None) -> VideoFeatures:
        """Decode ``path``, find and embed the face of every frame, embed the audio, align it to the frames.

        Raises:
            UnreadableInputError: the file is not a video PyAV can decode.
            TooLargeInputError: the video lasts longer than ``max_seconds``.
        """
        path = Path(path)
        if not path.is_file():
            raise MissingInputError(f"{path}: video file not found")
        try:
            faces = video_faces(path, self.faces, self.detector, batch_size=self.batch_size, max_seconds=max_seconds)
            n = faces.face_mask.size
            media = decode_media(path, n, self.speech.sample_rate, skip_damaged=True)
        except MediaTooLong as error:
            raise TooLargeInputError(str(error)) from None
        except MediaError as error:
            raise UnreadableInputError(str(error)) from None
        frame_times = media.frame_times[:n]
        if media.waveform is None or media.waveform.size == 0:
            audio = np.zeros((n, self.speech.dim), dtype=np.float16)
            audio_mask = np.zeros(n, dtype=bool)
        else:
            rows = self.speech.encode(media.waveform, self.speech.rows_for(float(frame_times[-1])))
            audio = align_at_times(rows, frame_times, self.speech.rate, self.align)
            audio_mask = np.ones(n, dtype=bool)
        declared = None if faces.declared is None else faces.declared.count
        warnings = [*self.warnings, *decoding_warnings(path, faces, media)]
        return VideoFeatures(
            faces.features, audio, faces.face_mask, audio_mask, media.fps, frame_times, faces.boxes, declared,
            tuple(warnings),
        )  # fmt: skip


def decoding_warnings(path: Path, faces: VideoFaces, media: DecodedMedia) -> list[str]:
    """What decoding lost: frames the container declares but did not decode, audio that ends before the video."""
    found = []
    decoded = faces.face_mask.size
    if faces.declared is not None and (missing := faces.declared.short_by(decoded)):
        found.append(
            f"{path.name}: decoded {decoded} of the {faces.declared.count} frames the file declares ({missing} "
            "lost: a truncated or damaged file); only the decoded frames are labelled"
        )
    elif faces.damage:
        found.append(f"{path.name}: a damaged packet was skipped ({faces.damage}); {decoded} frames decoded")
    if media.waveform is not None and media.waveform.size:
        audio_end = media.waveform.size / media.sample_rate
        last_frame = float(media.frame_times[decoded - 1])
        if audio_end < last_frame - max(2.0 / media.fps, AUDIO_END_SLACK_S):
            found.append(
                f"{path.name}: the audio ends at {audio_end:.2f} s, {last_frame - audio_end:.2f} s before the last "
                "frame; the frames after it are labelled with silence for audio"
            )
    return found


def predict_video_features(
    model: FusionTransformer,
    inference: InferenceSettings,
    features: VideoFeatures,
    batch_size: int = INFERENCE_BATCH_SIZE,
) -> VideoPrediction:
    """Label every frame of extracted video features with :func:`exprfusion.inference.predict.predict_video`."""
    labels, probabilities = predict_video(model, inference, **features.model_inputs(), batch_size=batch_size)
    return VideoPrediction(labels=labels, probabilities=probabilities, features=features)


def predict_video_file(
    model: FusionTransformer,
    inference: InferenceSettings,
    extractor: VideoFeatureExtractor,
    path: str | os.PathLike[str],
    *,
    max_seconds: float | None = None,
    batch_size: int = INFERENCE_BATCH_SIZE,
) -> VideoPrediction:
    """Label every frame of a video file: the one function behind ``exprfusion predict --video`` and the service.

    Args:
        model, inference: the loaded artefact (:func:`exprfusion.model.artifact.load_model`).
        extractor: the artefact's feature extractor (:class:`VideoFeatureExtractor`).
        path: the video file (any container and codec PyAV decodes; its audio track, if any, is used).
        max_seconds: refuse videos longer than this.
        batch_size: windows per forward pass of the fusion model.
    """
    with torch.inference_mode():
        features = extractor.extract(path, max_seconds=max_seconds)
    return predict_video_features(model, inference, features, batch_size)
