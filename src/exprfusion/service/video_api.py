"""The service's video endpoints: ``POST /predict_video`` (a video file) and the streaming sessions.

``/predict_video`` reads a video file as the request body (``application/octet-stream``), at most
``EXPRFUSION_MAX_VIDEO_BYTES`` (default 512 MiB; 413 above) and ``EXPRFUSION_MAX_VIDEO_SECONDS`` long (default 600;
413 above), and labels it with :func:`exprfusion.video.prediction.predict_video_file`, the function behind
``exprfusion predict --video``. The feature extractor is the model's own (its artefact's extractor record), loaded
when the service starts; ``EXPRFUSION_VISUAL_MODEL`` / ``EXPRFUSION_AUDIO_MODEL`` name folders that replace moved
checkpoints and ``EXPRFUSION_FACE_DETECTOR`` another detector (:func:`exprfusion.video.faces.load_detector`). A model
that cannot read video features answers 422 naming why.

Streaming (chunks of frame features, :class:`exprfusion.inference.streaming.StreamingPredictor`) is three plain HTTP
routes on
the service's FastAPI app: ``POST /stream/open`` (query ``fps`` optional) gives a session id, ``POST
/stream/{id}/append`` takes the next chunk as an ``.npz`` body (the ``/predict_npz`` format) and answers the labels
that became final, ``POST /stream/{id}/close`` answers the rest. At most ``EXPRFUSION_MAX_STREAMS`` sessions (default
8) are open at once (429 above); one idle for ``EXPRFUSION_STREAM_IDLE_SECONDS`` (default 60) is dropped (404 then).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exprfusion.core.environment import environment, variable
from exprfusion.core.errors import InputError
from exprfusion.core.labels import CLASS_NAMES
from exprfusion.inference.feature_arrays import read_video_npz_source
from exprfusion.inference.streaming import FinalLabels, StreamingPredictor, delay_frames, holds_until_close
from exprfusion.model.artifact import InferenceSettings
from exprfusion.model.fusion_transformer import FusionTransformer
from exprfusion.service.schemas import FramesPerSecond, PredictResponse, http_status, prediction_response
from exprfusion.service.sessions import Session, SessionStore, TooManySessions, UnknownSession
from exprfusion.video.prediction import VideoFeatureExtractor, extractor_of, predict_video_file

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


class StreamOptions(BaseModel):
    """The query options of ``/stream/open``."""

    model_config = ConfigDict(extra="forbid")

    fps: FramesPerSecond | None = None


class VideoPredictResponse(PredictResponse):
    """The ``/predict`` answer plus each frame's time and face box (``summary.fps`` is the video's frame rate)."""

    timestamps_s: list[float] = Field(description="when each frame is shown, seconds from the first frame")
    face_boxes: list[list[int] | None] = Field(description="per frame [x, y, width, height] of the face, or null")


def _query_error(error: ValidationError) -> str:
    return "query: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())


def labels_answer(update: FinalLabels, fps: float | None, received: int) -> dict[str, Any]:
    """A streaming answer: the final labels of frames ``first_frame ..`` (0-based), their times when fps is known."""
    frames = update.frames
    return {
        "first_frame": update.first,
        "labels": update.labels.tolist(),
        "classes": np.asarray(CLASS_NAMES)[update.labels].tolist(),
        "timestamps_s": (frames / fps).round(6).tolist() if fps else None,
        "received": received,
    }


class VideoEndpoints:
    """What the video routes do, apart from HTTP: each method answers ``(status, payload or error message)``."""

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
        self.sessions = SessionStore(
            lambda: StreamingPredictor(model, inference),
            self.limits.max_streams,
            self.limits.stream_idle_seconds,
            on_release=self._observe_stream,
        )

    def predict_video(self, body: bytes, query: dict[str, str]) -> tuple[int, VideoPredictResponse | str]:
        """Label every frame of an uploaded video file."""
        try:
            options = VideoOptions.model_validate(query)
        except ValidationError as error:
            return 400, _query_error(error)
        if self.extractor is None:
            assert self.extractor_error is not None
            return http_status(self.extractor_error), f"this service cannot read video: {self.extractor_error}"
        if not body:
            return 400, "request: the body is empty; send the video file as the body"
        with tempfile.NamedTemporaryFile(prefix="exprfusion-video-") as upload:
            upload.write(body)
            upload.flush()
            try:
                prediction = predict_video_file(
                    self.model, self.inference, self.extractor, upload.name, max_seconds=self.limits.max_video_seconds
                )
            except InputError as error:
                return http_status(error), str(error).replace(upload.name, "request")
        features = prediction.features
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
        return 200, VideoPredictResponse.model_construct(
            **dict(base),
            timestamps_s=np.round(features.frame_times, 6).tolist(),
            face_boxes=[box.to_list() if box else None for box in features.boxes],
        )

    def _observe_stream(self, session: Session, update: FinalLabels) -> None:
        """Monitoring sees a stream's frames once their labels are final, with the masks they arrived with."""
        if self.observe is not None and update.labels.size:
            face_mask, audio_mask = session.release_masks(update.labels.size)
            self.observe(update.labels, face_mask, audio_mask)

    def open_stream(self, query: dict[str, str]) -> tuple[int, dict[str, Any] | str]:
        """Open a streaming session."""
        try:
            options = StreamOptions.model_validate(query)
        except ValidationError as error:
            return 400, _query_error(error)
        try:
            key, _ = self.sessions.open(options.fps)
        except TooManySessions as error:
            return 429, str(error)
        except InputError as error:
            return http_status(error), str(error)
        delay = None if holds_until_close(self.model) else delay_frames(self.inference)  # None: labels at close
        return 200, {
            "session": key,
            **self.inference.to_dict(),
            "delay_frames": delay,
            "delay_s": delay / options.fps if options.fps and delay is not None else None,
            "idle_seconds": self.limits.stream_idle_seconds,
        }

    def append(self, key: str, body: bytes) -> tuple[int, dict[str, Any] | str]:
        """Feed a session the next chunk of frame features (an ``.npz`` body)."""
        try:
            chunk = read_video_npz_source(
                body, "chunk", config=self.model.config, max_frames=self.max_frames, allow_missing_stream=True
            )
            session, update = self.sessions.append(key, **chunk)
        except UnknownSession as error:
            return 404, str(error)
        except InputError as error:
            return http_status(error), str(error)
        return 200, labels_answer(update, session.fps, session.predictor.received)

    def close(self, key: str) -> tuple[int, dict[str, Any] | str]:
        """End a session and answer its remaining labels."""
        try:
            session, update = self.sessions.close(key)
        except UnknownSession as error:
            return 404, str(error)
        return 200, {**labels_answer(update, session.fps, session.predictor.received), "closed": True}
