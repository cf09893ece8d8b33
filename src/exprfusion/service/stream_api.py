"""The streaming routes' logic: ``POST /stream/open``, ``/stream/{id}/append``, ``/stream/{id}/close``.

Chunks of frame features in (each an ``.npz`` body, the ``/predict_npz`` format), the labels that became final out
(:class:`exprfusion.inference.streaming.StreamingPredictor`). ``/stream/open`` (query ``fps`` optional) gives a
session id, its window, stride, median kernel and delay; ``append`` answers the labels that became final; ``close``
the rest. At most ``EXPRFUSION_MAX_STREAMS`` sessions (default 8) are open at once (429 above); one idle for
``EXPRFUSION_STREAM_IDLE_SECONDS`` (default 60) is dropped (404 then).

A session is state (the frames its next windows read, the votes still open), so every request of one session must
reach the process that holds it. The service therefore keeps every session in one process of its own, the streaming
service (``serving/streams.py``, one worker), which the prediction workers, however many, call for the three routes
(BentoML's service composition); see ``docs/video.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from exprfusion.core.errors import InputError
from exprfusion.core.labels import CLASS_NAMES
from exprfusion.inference.feature_arrays import read_video_npz_source
from exprfusion.inference.streaming import FinalLabels, StreamingPredictor, delay_frames, holds_until_close
from exprfusion.model.artifact import InferenceSettings
from exprfusion.model.fusion_transformer import FusionTransformer
from exprfusion.service.schemas import FramesPerSecond, http_status
from exprfusion.service.sessions import Session, SessionStore, TooManySessions, UnknownSession


class StreamOptions(BaseModel):
    """The query options of ``/stream/open``."""

    model_config = ConfigDict(extra="forbid")

    fps: FramesPerSecond | None = None


class StreamAnswer(BaseModel):
    """What the streaming service answers a prediction worker: the HTTP status and the JSON body's content (the
    answer, or the error message)."""

    status: int
    answer: dict[str, Any] | str


def query_error(error: ValidationError) -> str:
    """A query's validation errors as one message (400)."""
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


class StreamEndpoints:
    """What the streaming routes do, apart from HTTP: each method answers a :class:`StreamAnswer`.

    Args:
        model, inference: the served model and its window, stride and median kernel.
        max_frames: the most frames one chunk may hold.
        max_sessions, idle_seconds: open sessions allowed at once, and how long an idle one lives.
        observe: monitoring, called with ``(labels, face_mask, audio_mask)`` of each batch of final labels.
    """

    def __init__(
        self,
        model: FusionTransformer,
        inference: InferenceSettings,
        max_frames: int,
        max_sessions: int,
        idle_seconds: int,
        observe: Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None = None,
    ) -> None:
        self.model, self.inference, self.max_frames = model, inference, max_frames
        self.idle_seconds = idle_seconds
        self.observe = observe
        self.sessions = SessionStore(
            lambda: StreamingPredictor(model, inference), max_sessions, idle_seconds, on_release=self._observe
        )

    def _observe(self, session: Session, update: FinalLabels) -> None:
        """Monitoring sees a stream's frames once their labels are final, with the masks they arrived with."""
        if self.observe is not None and update.labels.size:
            face_mask, audio_mask = session.release_masks(update.labels.size)
            self.observe(update.labels, face_mask, audio_mask)

    def open(self, query: dict[str, str]) -> StreamAnswer:
        """Open a streaming session."""
        try:
            options = StreamOptions.model_validate(query)
        except ValidationError as error:
            return StreamAnswer(status=400, answer=query_error(error))
        try:
            key, _ = self.sessions.open(options.fps)
        except TooManySessions as error:
            return StreamAnswer(status=429, answer=str(error))
        except InputError as error:
            return StreamAnswer(status=http_status(error), answer=str(error))
        delay = None if holds_until_close(self.model) else delay_frames(self.inference)  # None: labels at close
        answer = {
            "session": key,
            **self.inference.to_dict(),
            "delay_frames": delay,
            "delay_s": delay / options.fps if options.fps and delay is not None else None,
            "idle_seconds": self.idle_seconds,
        }
        return StreamAnswer(status=200, answer=answer)

    def append(self, key: str, body: bytes) -> StreamAnswer:
        """Feed a session the next chunk of frame features (an ``.npz`` body)."""
        try:
            chunk = read_video_npz_source(
                body, "chunk", config=self.model.config, max_frames=self.max_frames, allow_missing_stream=True
            )
            session, update = self.sessions.append(key, **chunk)
        except UnknownSession as error:
            return StreamAnswer(status=404, answer=str(error))
        except InputError as error:
            return StreamAnswer(status=http_status(error), answer=str(error))
        return StreamAnswer(status=200, answer=labels_answer(update, session.fps, session.predictor.received))

    def close(self, key: str) -> StreamAnswer:
        """End a session and answer its remaining labels."""
        try:
            session, update = self.sessions.close(key)
        except UnknownSession as error:
            return StreamAnswer(status=404, answer=str(error))
        answer = {**labels_answer(update, session.fps, session.predictor.received), "closed": True}
        return StreamAnswer(status=200, answer=answer)
