"""The streaming service: every streaming session of a server, in one worker, behind the prediction workers.

A streaming session is state (the frames its next windows read, the votes still open), so each of its requests must
reach the process that holds it; BentoML gives a request to any worker. The prediction service
(``serving/service.py``), with any number of workers, therefore answers ``/stream/open``, ``/stream/{id}/append`` and
``/stream/{id}/close`` by calling this service, which BentoML starts beside it (service composition,
``bentoml.depends``) with one worker: every session lives there, whichever prediction worker a request reaches. The
logic is :class:`exprfusion.service.stream_api.StreamEndpoints`; calls between the two services carry Python
objects (BentoML's internal pickle serialisation, which the client-facing server refuses), over a Unix socket in a
folder only the server's user can open (BentoML's composition on Linux): the streaming service is not on the
network.
"""

from __future__ import annotations

import logging
from pathlib import Path

import bentoml
from pydantic import BaseModel

from exprfusion.core.settings import dump
from exprfusion.model.artifact import load_model
from exprfusion.service.limits import ServingLimits
from exprfusion.service.metrics import MonitorSettings, PredictionMonitor, request_log_from_env
from exprfusion.service.schemas import model_version
from exprfusion.service.stream_api import StreamAnswer, StreamEndpoints
from exprfusion.service.video_api import VideoLimits
from exprfusion.service.workers import set_up_worker
from exprfusion.tracking.packaging import BENTO_MODEL_NAME, CARD_FILE, read_card

STREAMING_SERVICE = "exprfusion-streams"


class BentoArguments(BaseModel):
    """What ``bentoml build --arg`` bakes into a Bento: the exact model to serve (default: the store's latest)."""

    model_tag: str = f"{BENTO_MODEL_NAME}:latest"


ARGUMENTS = bentoml.use_arguments(BentoArguments)


@bentoml.service(name=STREAMING_SERVICE, workers=1, traffic={"timeout": 120})
class StreamingService:
    """The streaming sessions of one server (one worker: every session in one process)."""

    stored_model = bentoml.models.BentoModel(ARGUMENTS.model_tag)

    def __init__(self) -> None:
        set_up_worker()
        folder = Path(self.stored_model.path)
        card = dump(read_card(folder / CARD_FILE))
        model, inference, metadata = load_model(folder / card["file"])
        version = model_version(card)
        monitor = PredictionMonitor(
            version,
            metadata.get("prediction_prior"),
            MonitorSettings.from_env(),
            request_log_from_env(bentoml.server_context.worker_index),
        )
        limits = VideoLimits.from_env()
        self.streams = StreamEndpoints(
            model,
            inference,
            ServingLimits.from_env().max_frames,
            limits.max_streams,
            limits.stream_idle_seconds,
            monitor.observe,
        )
        logging.getLogger("bentoml").info("streaming sessions are kept in this process (%s)", STREAMING_SERVICE)

    @bentoml.api
    def open_session(self, query: dict[str, str]) -> StreamAnswer:
        """Open a session (``query``: the request's query options)."""
        return self.streams.open(query)

    @bentoml.api
    def append_chunk(self, session: str, chunk: bytes) -> StreamAnswer:
        """Feed a session the next chunk (the request's ``.npz`` body)."""
        return self.streams.append(session, chunk)

    @bentoml.api
    def close_session(self, session: str) -> StreamAnswer:
        """Close a session."""
        return self.streams.close(session)
