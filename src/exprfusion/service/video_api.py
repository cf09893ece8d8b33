"""The service's video endpoint: ``POST /predict_video`` (a video file).

``/predict_video`` reads a video file as the request body (``application/octet-stream``), at most
``EXPRFUSION_MAX_VIDEO_BYTES`` (default 512 MiB; 413 above) and ``EXPRFUSION_MAX_VIDEO_SECONDS`` long (default 600;
413 above), and labels it as ``exprfusion predict --video`` does
(:meth:`exprfusion.video.prediction.VideoFeatureExtractor.extract`, then
:func:`exprfusion.video.prediction.predict_video_features`). The feature extractor is the model's own (its
artefact's extractor record), loaded when the service starts; ``EXPRFUSION_VISUAL_MODEL`` /
``EXPRFUSION_AUDIO_MODEL`` name folders that replace moved checkpoints and ``EXPRFUSION_FACE_DETECTOR`` another
detector (:func:`exprfusion.sources.extract.faces.load_detector`; unset: the detector of the model's training faces,
else ``haar``). A model that cannot read video features answers 422 naming why.

The streaming routes, chunks of frame features in and final labels out, are
:mod:`exprfusion.service.stream_api`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exprfusion.core.environment import environment, variable
from exprfusion.core.errors import InputError
from exprfusion.model.artifact import InferenceSettings
from exprfusion.model.fusion_transformer import FusionTransformer
from exprfusion.service.schemas import PredictionSummary, PredictResponse, http_status, prediction_response
from exprfusion.service.stream_api import StreamOptions, query_error
from exprfusion.video.prediction import VideoFeatureExtractor, extractor_of, predict_video_features

__all__ = ["StreamOptions", "VideoEndpoints", "VideoLimits", "VideoOptions", "VideoPredictResponse"]  # StreamOptions:
# the streaming routes' query options, now in exprfusion.service.stream_api, still importable from here

MAX_VIDEO_BYTES_ENV = variable("max_video_bytes")
MAX_VIDEO_SECONDS_ENV = variable("max_video_seconds")
MAX_STREAMS_ENV = variable("max_streams")
STREAM_IDLE_ENV = variable("stream_idle_seconds")


@dataclass(frozen=True)
class VideoLimits:
    """How large and long an uploaded video may be, and how many streams may be open and for how long idle."""

    max_video_bytes: int
    max_video_seconds: int
    max_streams: int
    stream_idle_seconds: int

    @classmethod
    def from_env(cls) -> VideoLimits:
        """The limits the environment variables set, else the defaults."""
        env = environment()
        return cls(
            max_video_bytes=env.max_video_bytes,
            max_video_seconds=env.max_video_seconds,
            max_streams=env.max_streams,
            stream_idle_seconds=env.stream_idle_seconds,
        )


class VideoOptions(BaseModel):
    """The query options of ``/predict_video`` (its body is the video file)."""

    model_config = ConfigDict(extra="forbid")

    return_probabilities: bool = False


class VideoSummary(PredictionSummary):
    """The ``/predict`` summary plus the frames decoded and the frames the file declares."""

    decoded_frames: int = Field(description="frames decoded from the file (one label each)")
    declared_frames: int | None = Field(description="frames the file's container declares (null: none declared)")


class VideoPredictResponse(PredictResponse):
    """The ``/predict`` answer plus each frame's time and face box (``summary.fps`` is the video's frame rate), and
    what decoding lost or what differs from the model's training faces (``warnings``)."""

    summary: VideoSummary
    timestamps_s: list[float] = Field(description="when each frame is shown, seconds from the first frame")
    face_boxes: list[list[int] | None] = Field(description="per frame [x, y, width, height] of the face, or null")
    warnings: list[str] = Field(description="frames declared but not decoded, audio ending early, other crops")


class VideoEndpoints:
    """What ``/predict_video`` does, apart from HTTP: :meth:`predict_video` answers ``(status, payload or error
    message)``."""

    def __init__(
        self,
        model: FusionTransformer,
        inference: InferenceSettings,
        metadata: dict[str, Any],
        version: str,
        max_frames: int,
        limits: VideoLimits | None = None,
        observe: Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None = None,
    ) -> None:
        self.model, self.inference, self.version, self.max_frames = model, inference, version, max_frames
        self.observe = observe  # monitoring: called with (labels, face_mask, audio_mask) of each labelled video
        self.limits = limits or VideoLimits.from_env()
        self.extractor: VideoFeatureExtractor | None = None
        self.extractor_error: InputError | None = None
        env = environment()
        try:
            self.extractor = VideoFeatureExtractor(
                model.config,
                extractor_of(metadata, "the served model"),
                visual_model=env.visual_model,
                audio_model=env.audio_model,
                detector=env.face_detector,
                device="cpu",
            )
        except InputError as error:  # the service still labels features; /predict_video names the problem
            self.extractor_error = error

    def predict_video(
        self, body: bytes, query: dict[str, str], headers: MutableMapping[str, str] | None = None
    ) -> tuple[int, VideoPredictResponse | str]:
        """Label every frame of an uploaded video file; ``headers`` get its ``Server-Timing`` (milliseconds spent
        decoding the video and extracting its features, ``features``, and labelling them, ``model``)."""
        try:
            options = VideoOptions.model_validate(query)
        except ValidationError as error:
            return 400, query_error(error)
        if self.extractor is None:
            assert self.extractor_error is not None
            return http_status(self.extractor_error), f"this service cannot read video: {self.extractor_error}"
        if not body or body == b"{}":  # BentoML hands an empty body on as "{}", JSON's empty object
            return 400, "request: the body is empty; send the video file as the body"
        with tempfile.NamedTemporaryFile(prefix="exprfusion-video-") as upload:
            upload.write(body)
            upload.flush()
            started = time.perf_counter()
            try:
                with torch.inference_mode():
                    features = self.extractor.extract(upload.name, max_seconds=self.limits.max_video_seconds)
            except InputError as error:
                return http_status(error), str(error).replace(upload.name, "request")
        extracted = time.perf_counter()
        prediction = predict_video_features(self.model, self.inference, features)
        if headers is not None:
            labelled = time.perf_counter() - extracted
            headers["Server-Timing"] = (
                f"features;dur={1000 * (extracted - started):.1f}, model;dur={1000 * labelled:.1f}"
            )
        if self.observe is not None:
            self.observe(prediction.labels, features.face_mask, features.audio_mask)
        base = prediction_response(
            prediction.labels,
            prediction.probabilities if options.return_probabilities else None,
            features.face_mask,
            features.audio_mask,
            features.fps,
            self.version,
        )
        summary = VideoSummary.model_construct(
            **dict(base.summary), decoded_frames=features.decoded_frames, declared_frames=features.declared_frames
        )
        return 200, VideoPredictResponse.model_construct(
            **{**dict(base), "summary": summary},
            timestamps_s=np.round(features.frame_times, 6).tolist(),
            face_boxes=[box.to_list() if box else None for box in features.boxes],
            warnings=[line.replace(Path(upload.name).name, "request") for line in features.warnings],
        )
