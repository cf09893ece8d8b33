"""The exprfusion prediction service: one video's frame features in, one expression label per frame out.

Routes: ``POST /predict`` (JSON), ``POST /predict_npz`` (an ``.npz`` body: the fast path for long videos),
``POST /predict_video`` (a video file), ``POST /stream/open``, ``/stream/{id}/append``, ``/stream/{id}/close``
(labels while a video runs; :mod:`exprfusion.service.video_api`), ``GET /model``, and BentoML's own ``/livez``,
``/readyz``,
``/metrics`` and OpenAPI docs (``/``).

The model comes from BentoML's model store (the tag the Bento was built with, see
:func:`exprfusion.tracking.packaging.build_bento`); its window, stride, median kernel and feature widths come from the
artefact. Every input goes through the library's checks (:mod:`exprfusion.inference.feature_arrays`) and is labelled by
:func:`exprfusion.inference.predict.predict_video`, exactly as ``exprfusion predict`` labels it. Bad input is answered
400 (undecodable), 413 (too large) or 422 (decoded but invalid) with a message naming the field.

Monitoring (:mod:`exprfusion.service.metrics`): requests, rejects by reason and latency of every prediction route, and
the
frames per predicted class, without a face and without audio of every labelled video, at ``/metrics``; each labelled
video also appends one record to the request log that ``exprfusion drift-report`` reads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import bentoml
import numpy as np
from bentoml.exceptions import BentoMLException
from bentoml.validators import ContentType
from fastapi import FastAPI, Request
from pydantic import Field, Strict, ValidationError
from starlette.responses import JSONResponse

from exprfusion.core.errors import InputError
from exprfusion.core.settings import dump
from exprfusion.inference.feature_arrays import check_video_arrays, read_video_npz_source
from exprfusion.inference.predict import predict_video
from exprfusion.model.artifact import load_model
from exprfusion.service.build_info import library_folder, served_commit
from exprfusion.service.client_error_logs import install_client_error_filter
from exprfusion.service.limits import (
    MAX_JSON_BYTES_ENV,
    MAX_REQUEST_BYTES_ENV,
    RELEASE_BYTES,
    BodyRule,
    RequestGuard,
    ServingLimits,
)
from exprfusion.service.metrics import (
    MonitorSettings,
    PredictionMonitor,
    RequestMetrics,
    post_routes,
    request_log_from_env,
)
from exprfusion.service.openapi_document import OpenAPIDocument
from exprfusion.service.request_log_location import check_request_log_setting
from exprfusion.service.schemas import (
    FeatureRows,
    FramesPerSecond,
    MaskValues,
    ModelDescription,
    NpzOptions,
    PredictResponse,
    describe_model,
    http_status,
    model_version,
    prediction_response,
)
from exprfusion.service.stream_api import StreamAnswer
from exprfusion.service.video_api import MAX_VIDEO_BYTES_ENV, VideoEndpoints, VideoLimits, VideoPredictResponse
from exprfusion.service.workers import prediction_workers, release_freed_memory, set_up_worker
from exprfusion.tracking.packaging import CARD_FILE, read_card
from serving.streaming import ARGUMENTS, StreamingService

LIMITS = ServingLimits.from_env()
VIDEO_LIMITS = VideoLimits.from_env()
check_request_log_setting()
install_client_error_filter()  # a 4xx is one log line: no traceback, no request content
model_routes = FastAPI(title="exprfusion model description")


async def _streamed(call: Awaitable[StreamAnswer]) -> JSONResponse:
    """The streaming service's answer as the client's: its status and body, or 503 when it cannot be reached."""
    try:
        answer = await call
    except BentoMLException as error:
        message = f"the streaming service did not answer ({type(error).__name__}); retry, or open a new session"
        return JSONResponse({"error": message}, status_code=503)
    body = answer.answer if answer.status == 200 else {"error": answer.answer}
    return JSONResponse(body, status_code=answer.status)


def _error(ctx: bentoml.Context, status: int, message: str) -> JSONResponse:
    """A JSON error answer ``{"error": message}`` (``ctx`` carries the status through BentoML's response)."""
    ctx.response.status_code = status
    return JSONResponse({"error": message}, status_code=status)


@bentoml.service(name="exprfusion", workers=prediction_workers(), traffic={"timeout": 600})
@bentoml.asgi_app(model_routes)
class ExpressionService:
    """Frame-level expression labels from the packaged fusion model."""

    stored_model = bentoml.models.BentoModel(ARGUMENTS.model_tag)
    streams = bentoml.depends(StreamingService)  # every streaming session, in one worker (serving/streaming.py)

    def __init__(self) -> None:
        set_up_worker()  # torch threads (the cores shared out among the workers), interpreter switch interval
        folder = Path(self.stored_model.path)
        card = dump(read_card(folder / CARD_FILE))
        self.model, self.inference, metadata = load_model(folder / card["file"])
        self.version = model_version(card)
        code_commit = served_commit(Path(__file__).resolve().parent)
        self.description = describe_model(card, metadata, str(self.stored_model.tag), code_commit)
        logging.getLogger("bentoml").info("exprfusion %s from %s", code_commit, library_folder())
        request_log = request_log_from_env(bentoml.server_context.worker_index)
        prior = metadata.get("prediction_prior")
        self.monitor = PredictionMonitor(self.version, prior, MonitorSettings.from_env(), request_log)
        self.video = VideoEndpoints(
            self.model, self.inference, metadata, self.version, LIMITS.max_frames, VIDEO_LIMITS, self.monitor.observe
        )

    def _label(
        self, ctx: bentoml.Context, read: Callable[[], dict[str, np.ndarray]], fps: float | None, probabilities: bool
    ) -> PredictResponse | JSONResponse:
        """Check the input (``read``), label every frame, and answer; bad input is a 4xx naming the problem.

        The answer's ``Server-Timing`` header gives the milliseconds spent decoding and checking the input
        (``checks``) and labelling it (``model``).
        """
        started = time.perf_counter()
        try:
            video = read()
        except InputError as error:
            return _error(ctx, http_status(error), str(error))
        checked = time.perf_counter()
        labels, frame_probabilities = predict_video(self.model, self.inference, **video)
        done = time.perf_counter()
        self.monitor.observe(labels, video["face_mask"], video["audio_mask"])
        ctx.response.headers["Server-Timing"] = (
            f"checks;dur={1000 * (checked - started):.1f}, model;dur={1000 * (done - checked):.1f}"
        )
        answer = prediction_response(
            labels,
            frame_probabilities if probabilities else None,
            video["face_mask"],
            video["audio_mask"],
            fps,
            self.version,
        )
        if video["visual"].nbytes + video["audio"].nbytes >= RELEASE_BYTES:
            release_freed_memory()  # what reading and labelling a long video freed goes back before the answer does
        return answer

    @bentoml.api(route="/predict")
    def predict(
        self,
        ctx: bentoml.Context,
        visual: FeatureRows | None = None,
        audio: FeatureRows | None = None,
        face_mask: MaskValues | None = None,
        audio_mask: MaskValues | None = None,
        fps: FramesPerSecond | None = None,
        return_probabilities: Annotated[bool, Strict()] = False,
    ) -> PredictResponse:
        """Label every frame of one video sent as JSON.

        `visual` is frames × Dv, `audio` frames × Da (either may be null: that stream is absent and the other
        answers alone); `face_mask` / `audio_mask` default to non-zero visual rows / all present. The answer holds
        one label and class name per frame, the probabilities if asked, and a summary.
        """
        config = self.model.config

        def read() -> dict[str, np.ndarray]:
            return check_video_arrays(
                visual, audio, face_mask, audio_mask, config=config, max_frames=LIMITS.max_frames, source="request"
            )

        return self._label(ctx, read, fps, return_probabilities)

    @bentoml.api(route="/predict_npz")
    def predict_npz(
        self,
        features: Annotated[bytes, ContentType("application/octet-stream"), Field(description="an .npz archive")],
        /,
        ctx: bentoml.Context,
    ) -> PredictResponse:
        """Label every frame of one video sent as an `.npz` body (`np.savez`), the format `exprfusion predict` reads.

        Arrays: `visual` [n, Dv] and/or `audio` [n, Da] floats, optional `face_mask` / `audio_mask` bool [n].
        Query options: `return_probabilities` (default false) and `fps`. Nothing in it is unpickled.
        """
        try:
            options = NpzOptions.model_validate(dict(ctx.request.query_params))
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            return _error(ctx, 400, f"query: {problems}")
        config = self.model.config

        def read() -> dict[str, np.ndarray]:
            return read_video_npz_source(
                features, "request", config=config, max_frames=LIMITS.max_frames, allow_missing_stream=True
            )

        if len(features) >= RELEASE_BYTES:
            release_freed_memory()  # the pieces the body came in were freed once joined: back to the system first
        return self._label(ctx, read, options.fps, options.return_probabilities)

    @bentoml.api(route="/predict_video")
    def predict_video_file(
        self,
        video: Annotated[bytes, ContentType("application/octet-stream"), Field(description="a video file")],
        /,
        ctx: bentoml.Context,
    ) -> VideoPredictResponse:
        """Label every frame of an uploaded video file (the body): faces, features by the model's own extractor.

        Query option: `return_probabilities`. The answer adds each frame's time and face box; `summary.fps` is the
        video's frame rate. See `src/exprfusion/service/video_api.py` for the size and duration limits.
        """
        status, answer = self.video.predict_video(video, dict(ctx.request.query_params), ctx.response.headers)
        return answer if status == 200 else _error(ctx, status, answer)

    @model_routes.post("/stream/open")
    async def stream_open(self, request: Request) -> JSONResponse:
        """Open a streaming session (query `fps` optional): its id, window, stride, median kernel and delay."""
        return await _streamed(self.streams.to_async.open_session(query=dict(request.query_params)))

    @model_routes.post("/stream/{session}/append")
    async def stream_append(self, session: str, request: Request) -> JSONResponse:
        """Append the next chunk of frame features (an .npz body); answer the labels that became final."""
        body = await request.body()
        return await _streamed(self.streams.to_async.append_chunk(session=session, chunk=body))

    @model_routes.post("/stream/{session}/close")
    async def stream_close(self, session: str) -> JSONResponse:
        """Close a streaming session; answer the labels of its last frames."""
        return await _streamed(self.streams.to_async.close_session(session=session))

    @model_routes.get("/model")
    def model_description(self) -> ModelDescription:
        """The served model: registered name, version and alias, parameters, validation macro-F1, lineage."""
        return self.description


# First added, outermost: the request metrics see the guard's refusals too. Counted: every prediction route.
PREDICTION_ROUTES = [api.route for api in ExpressionService.apis.values()]
PREDICTION_ROUTES += post_routes(model_routes)
ExpressionService.add_asgi_middleware(RequestMetrics, routes=PREDICTION_ROUTES)
ExpressionService.add_asgi_middleware(
    RequestGuard,
    max_bytes=LIMITS.max_request_bytes,
    setting=MAX_REQUEST_BYTES_ENV,
    rules={
        "/predict": BodyRule(("application/json",), LIMITS.max_json_bytes, MAX_JSON_BYTES_ENV),
        "/predict_npz": BodyRule(("application/octet-stream",), LIMITS.max_request_bytes, MAX_REQUEST_BYTES_ENV),
        "/predict_video": BodyRule(("application/octet-stream",), VIDEO_LIMITS.max_video_bytes, MAX_VIDEO_BYTES_ENV),
    },
)
# GET /docs.json: BentoML's document completed with each route's query options, body and statuses.
ExpressionService.add_asgi_middleware(OpenAPIDocument, spec=lambda: ExpressionService.openapi_spec.asdict())
