"""The exprfusion prediction service: one video's frame features in, one expression label per frame out.

Routes: ``POST /predict`` (JSON), ``POST /predict_npz`` (an ``.npz`` body: the fast path for long videos),
``GET /model``, and BentoML's own ``/livez``, ``/readyz``, ``/metrics`` and OpenAPI docs (``/``).

The model comes from BentoML's model store (the tag the Bento was built with, see
:func:`exprfusion.packaging.build_bento`); its window, stride, median kernel and feature widths come from the
artefact. Every input goes through the library's checks (:mod:`exprfusion.video_input`) and is labelled by
:func:`exprfusion.predict.predict_video`, exactly as ``exprfusion predict`` labels it. Bad input is answered
400 (undecodable), 413 (too large) or 422 (decoded but invalid) with a message naming the field.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import bentoml
import numpy as np
from bentoml.validators import ContentType
from fastapi import FastAPI
from pydantic import BaseModel, Field, Strict, ValidationError
from starlette.responses import JSONResponse

from exprfusion.artifact import load_model
from exprfusion.errors import InputError
from exprfusion.packaging import BENTO_MODEL_NAME, CARD_FILE
from exprfusion.predict import predict_video
from exprfusion.video_input import check_video_arrays, read_video_npz_source
from serving.limits import (
    MAX_JSON_BYTES_ENV,
    MAX_REQUEST_BYTES_ENV,
    BodyRule,
    RequestGuard,
    ServingLimits,
)
from serving.schemas import (
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


class BentoArguments(BaseModel):
    """What ``bentoml build --arg`` bakes into a Bento: the exact model to serve (default: the store's latest)."""

    model_tag: str = f"{BENTO_MODEL_NAME}:latest"


ARGUMENTS = bentoml.use_arguments(BentoArguments)
LIMITS = ServingLimits.from_env()
model_routes = FastAPI(title="exprfusion model description")


def _error(ctx: bentoml.Context, status: int, message: str) -> JSONResponse:
    """A JSON error answer ``{"error": message}`` (``ctx`` carries the status through BentoML's response)."""
    ctx.response.status_code = status
    return JSONResponse({"error": message}, status_code=status)


@bentoml.service(name="exprfusion", traffic={"timeout": 600})
@bentoml.asgi_app(model_routes)
class ExpressionService:
    """Frame-level expression labels from the packaged fusion model."""

    stored_model = bentoml.models.BentoModel(ARGUMENTS.model_tag)

    def __init__(self) -> None:
        folder = Path(self.stored_model.path)
        card = json.loads((folder / CARD_FILE).read_text())
        self.model, self.inference, metadata = load_model(folder / card["file"])
        self.version = model_version(card)
        self.description = describe_model(card, metadata, str(self.stored_model.tag))

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
        ctx.response.headers["Server-Timing"] = (
            f"checks;dur={1000 * (checked - started):.1f}, model;dur={1000 * (done - checked):.1f}"
        )
        return prediction_response(
            labels,
            frame_probabilities if probabilities else None,
            video["face_mask"],
            video["audio_mask"],
            fps,
            self.version,
        )

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

        return self._label(ctx, read, options.fps, options.return_probabilities)

    @model_routes.get("/model")
    def model_description(self) -> ModelDescription:
        """The served model: registered name, version and alias, parameters, validation macro-F1, lineage."""
        return self.description


ExpressionService.add_asgi_middleware(
    RequestGuard,
    max_bytes=LIMITS.max_request_bytes,
    setting=MAX_REQUEST_BYTES_ENV,
    rules={
        "/predict": BodyRule(("application/json",), LIMITS.max_json_bytes, MAX_JSON_BYTES_ENV),
        "/predict_npz": BodyRule(("application/octet-stream",), LIMITS.max_request_bytes, MAX_REQUEST_BYTES_ENV),
    },
)
