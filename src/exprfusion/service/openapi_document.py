"""The service's OpenAPI document (``GET /docs.json``): every route's body, query options and statuses.

BentoML generates the document from the service: request and answer schemas of its API methods, the mounted FastAPI
routes as FastAPI describes them, and for every API method the same generic 400 / 404 / 500. :func:`document`
completes it from what the routes really read and answer: the service's description, the query options (their
schemas from :class:`~exprfusion.service.schemas.NpzOptions`, which parses ``fps`` and ``return_probabilities``), the
binary body of a streaming chunk, JSON schemas of the streaming answers, ``nullable`` for the JSON fields that may be
``null``, links from a new session to its routes, and for each route exactly the error statuses it answers, all with
the one error schema (``{"error": message}``, plus ``detail`` locating each problem in BentoML's validation answers).
:class:`OpenAPIDocument`, an ASGI middleware, serves the completed document in place of BentoML's.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from exprfusion.service.limits import App, Message, Receive, Send
from exprfusion.service.schemas import NpzOptions

DOCUMENT_PATH = "/docs.json"
ERROR_SCHEMA = "Error"
ERROR_REF = f"#/components/schemas/{ERROR_SCHEMA}"
GENERIC_ERRORS = ("InvalidArgument", "NotFound", "InternalServerError", "HTTPValidationError", "ValidationError")
APP_TAG = "Service APIs"
QUERY_DESCRIPTIONS = {"return_probabilities": "true: the answer holds each frame's 8 class probabilities"}

DESCRIPTION = """Frame-level facial-expression labels (8 classes: Neutral, Anger, Disgust, Fear, Happiness, Sadness,
Surprise, Other) for a video, from its per-frame face (BEiT) and audio (WavLM) features, by a dual-branch fusion
Transformer with sliding-window soft voting and a median filter.

Send one video's features as JSON (`POST /predict`) or as an `.npz` archive (`POST /predict_npz`, the fast path for
long videos), a video file (`POST /predict_video`), or chunks of a running video (`/stream/open`, then
`/stream/{session}/append` and `/stream/{session}/close`). `GET /model` describes the served model.

Bad input is never a 5xx: every refusal is a 4xx with a JSON body `{"error": "<message naming the field>"}`
(BentoML's own validation adds `detail`, the location of each problem).
"""


class Error(BaseModel):
    """A refused request: what was wrong, naming the field or array."""

    error: str = Field(description="the problem, naming the field, array or query option")
    detail: list[dict[str, Any]] | None = Field(
        None, description="BentoML's validation answers only: each problem's location (`loc`), `msg` and `type`"
    )


class StreamOpened(BaseModel):
    """A new streaming session: its id and the inference settings its labels follow."""

    session: str = Field(description="the id the append and close routes take")
    window: int
    stride: int
    median_kernel: int
    delay_frames: int | None = Field(description="frames a label waits before it is final; null: all at close")
    delay_s: float | None = Field(description="delay_frames / fps, when fps is given")
    idle_seconds: int = Field(description="a session idle this long is dropped")


class StreamLabels(BaseModel):
    """The labels that became final: frames ``first_frame ..`` (0-based) of the stream."""

    first_frame: int
    labels: list[int]
    classes: list[str]
    timestamps_s: list[float] | None = Field(description="each frame's time, when the session has an fps")
    received: int = Field(description="frames received so far")
    closed: bool | None = Field(None, description="true in the answer of close")


@dataclass(frozen=True)
class RouteDoc:
    """What one route reads and answers, beyond what BentoML writes: query options, body, statuses."""

    method: str
    statuses: dict[int, str]
    query: tuple[str, ...] = ()  # query options (fields of NpzOptions)
    body: str | None = None  # a binary body of this description (application/octet-stream), if not BentoML's own
    answer: type[BaseModel] | None = None  # the 200 answer's schema, where BentoML writes none
    nullable: tuple[str, ...] = field(default=())  # JSON body fields that may be null
    links: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)  # name: (route, its parameters)


FEATURES_422 = (
    "decoded but invalid: wrong feature width, NaN or infinite values, no frames, streams of different lengths, "
    "neither stream, a mask of the wrong length or that marks frames of an absent stream"
)
STREAMS_503 = "the streaming sessions could not be reached: retry, or open a new session"
NPZ_400 = "not an .npz archive of named arrays (corrupt, truncated, a single .npy), or an array of Python objects"
ROUTES = {
    "/predict": RouteDoc(
        "post",
        {
            400: "not JSON, or a value of the wrong JSON type (a feature that is not a number, a mask entry that is "
            "not a boolean, an fps out of range): BentoML's validation answer, with `detail`",
            413: "more frames than EXPRFUSION_MAX_FRAMES, or a body over EXPRFUSION_MAX_JSON_BYTES",
            415: "a Content-Type other than application/json",
            422: FEATURES_422,
        },
        nullable=("visual", "audio", "face_mask", "audio_mask", "fps"),
    ),
    "/predict_npz": RouteDoc(
        "post",
        {
            400: f"{NPZ_400}; a bad query option",
            413: "more frames than EXPRFUSION_MAX_FRAMES, an array declaring more values than such a video holds, or "
            "a body over EXPRFUSION_MAX_REQUEST_BYTES",
            415: "a Content-Type other than application/octet-stream",
            422: f"{FEATURES_422}; an array of the wrong dtype; an unknown array",
        },
        query=("return_probabilities", "fps"),
    ),
    "/predict_video": RouteDoc(
        "post",
        {
            400: "an empty body, a file that is not a video PyAV can decode, or a bad query option",
            413: "a video over EXPRFUSION_MAX_VIDEO_BYTES or longer than EXPRFUSION_MAX_VIDEO_SECONDS",
            415: "a Content-Type other than application/octet-stream",
            422: "the served model cannot read video features (the message says why), or no usable frames",
        },
        query=("return_probabilities",),
    ),
    "/stream/open": RouteDoc(
        "post",
        {
            400: "a bad query option",
            413: "a body over EXPRFUSION_MAX_REQUEST_BYTES (the route reads none)",
            422: "the session cannot be opened for this model (the message says why)",
            429: "EXPRFUSION_MAX_STREAMS sessions are open: close one, or retry once an idle one expires",
            503: STREAMS_503,
        },
        query=("fps",),
        answer=StreamOpened,
        links={
            "append": ("/stream/{session}/append", {"session": "$response.body#/session"}),
            "close": ("/stream/{session}/close", {"session": "$response.body#/session"}),
        },
    ),
    "/stream/{session}/append": RouteDoc(
        "post",
        {
            400: NPZ_400,
            404: "no open session with this id (closed, dropped after EXPRFUSION_STREAM_IDLE_SECONDS idle, or never "
            "opened)",
            413: "more frames than EXPRFUSION_MAX_FRAMES in the chunk, or a body over EXPRFUSION_MAX_REQUEST_BYTES",
            422: f"{FEATURES_422}; an array of the wrong dtype; an unknown array",
            503: STREAMS_503,
        },
        body="the next chunk of frame features: an .npz archive as /predict_npz reads it",
        answer=StreamLabels,
    ),
    "/stream/{session}/close": RouteDoc(
        "post",
        {
            404: "no open session with this id (closed, dropped after EXPRFUSION_STREAM_IDLE_SECONDS idle, or never "
            "opened)",
            413: "a body over EXPRFUSION_MAX_REQUEST_BYTES (the route reads none)",
            503: STREAMS_503,
        },
        answer=StreamLabels,
    ),
    "/model": RouteDoc("get", {}),
}


def _query_parameters(names: tuple[str, ...]) -> list[dict[str, Any]]:
    """OpenAPI query parameters of the options ``names`` (an optional one: its non-null schema)."""
    parameters = []
    for name in names:
        schema = NpzOptions.model_json_schema()["properties"][name]
        schema = dict(schema)
        branches = [branch for branch in schema.pop("anyOf", []) if branch.get("type") != "null"]
        schema.update(branches[0] if branches else {})
        description = schema.pop("description", None) or QUERY_DESCRIPTIONS.get(name, name)
        schema.pop("title", None)
        if schema.get("default") is None:
            schema.pop("default", None)
        parameters.append(
            {"name": name, "in": "query", "required": False, "description": description, "schema": schema}
        )
    return parameters


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def document(base: dict[str, Any]) -> dict[str, Any]:
    """BentoML's OpenAPI document ``base``, completed (see the module's description); ``base`` is left unchanged."""
    spec = copy.deepcopy(base)
    spec.setdefault("info", {}).update(title="exprfusion", description=DESCRIPTION)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_SCHEMA] = Error.model_json_schema()
    for path, route in ROUTES.items():
        operation = spec.get("paths", {}).get(path, {}).get(route.method)
        if operation is None:  # a route this service does not have
            continue
        operation["tags"] = [APP_TAG]
        responses = {"200": operation.get("responses", {}).get("200") or {"description": "Successful Response"}}
        if route.answer is not None:
            schema = route.answer.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[route.answer.__name__] = schema
            responses["200"] = {
                "description": route.answer.__doc__ or "",
                "content": _json_content({"$ref": f"#/components/schemas/{route.answer.__name__}"}),
            }
        if route.links:  # the routes that take this answer's value, for clients and stateful testing
            responses["200"]["links"] = {
                name: {"operationRef": f"#/paths/{target.replace('/', '~1')}/post", "parameters": parameters}
                for name, (target, parameters) in route.links.items()
            }
        for status, meaning in sorted(route.statuses.items()):
            responses[str(status)] = {"description": meaning, "content": _json_content({"$ref": ERROR_REF})}
        operation["responses"] = responses
        if route.query:
            operation["parameters"] = [
                *[p for p in operation.get("parameters", []) if p.get("in") != "query"],
                *_query_parameters(route.query),
            ]
        if route.body is not None:
            operation["requestBody"] = {
                "required": True,
                "description": route.body,
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            }
        body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
        for name in route.nullable:
            if name in body.get("properties", {}):
                body["properties"][name]["nullable"] = True
    for name in GENERIC_ERRORS:  # in an order where a schema comes before those it refers to
        if f'"#/components/schemas/{name}"' not in json.dumps(spec):
            schemas.pop(name, None)
    return spec


class OpenAPIDocument:
    """ASGI middleware: answers ``GET /docs.json`` with :func:`document` of ``spec()`` (BentoML's), built once."""

    def __init__(self, app: App, spec: Callable[[], dict[str, Any]]) -> None:
        self.app = app
        self.spec = spec
        self._body: bytes | None = None

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        """Serve the completed document; pass every other request on."""
        if scope["type"] != "http" or scope.get("path") != DOCUMENT_PATH or scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        if self._body is None:
            self._body = json.dumps(document(self.spec())).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(self._body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self._body if scope["method"] == "GET" else b""})
