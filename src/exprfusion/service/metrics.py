"""The service's Prometheus metrics, exported at BentoML's ``/metrics`` (``bentoml.metrics``, multiprocess mode).

Counters (every worker adds to the same series; Prometheus sums them, so they are right with any number of workers):

- ``exprfusion_predicted_frames_total{class_name}``: labelled frames per predicted class;
- ``exprfusion_missing_face_frames_total``, ``exprfusion_missing_audio_frames_total``: labelled frames without a
  face / without audio;
- ``exprfusion_requests_total{endpoint}``: requests to a prediction endpoint (any answer);
- ``exprfusion_rejected_requests_total{endpoint, reason}``: of those, the ones answered with an error, ``reason``
  one of :data:`REJECT_REASONS` (from the status: 400 ``unreadable``, 413 ``too_large``, 415 ``media_type``, 422
  ``invalid``, another 4xx ``client_error``, 5xx ``server_error``);
- ``exprfusion_prediction_latency_seconds{endpoint}`` (histogram): seconds from request to answer, answered requests.

Drift is computed from the counters by Prometheus (``monitoring/rules.yml``: class shares over a time range,
Jensen–Shannon distance against ``exprfusion_reference_share{class_name}``, the model's ``prediction_prior``), so
it covers all workers. Each worker also exports the drift of its own last ``EXPRFUSION_DRIFT_WINDOW`` frames
(default 9000, five minutes at 30 fps) as gauges in ``liveall`` mode: one series per live worker, labelled ``pid``
(``exprfusion_window_js_distance``, ``exprfusion_window_psi``, ``exprfusion_window_missing_face_rate``,
``exprfusion_window_frames``). A model without a ``prediction_prior`` exports neither the reference nor the drift
gauges (``GET /model`` says so).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import bentoml
import numpy as np

from exprfusion.core.environment import Environment, environment, variable
from exprfusion.core.labels import CLASS_NAMES
from exprfusion.monitoring.drift import PredictionWindow, reference_distribution
from exprfusion.monitoring.drift_report import request_record
from exprfusion.monitoring.request_log import RequestLog
from exprfusion.service.limits import Message, Receive, Send
from exprfusion.service.request_log_location import request_log_path

DRIFT_WINDOW_ENV = variable("drift_window")
REQUEST_LOG_ENV = variable("request_log")
REQUEST_LOG_BYTES_ENV = variable("request_log_bytes")
REQUEST_LOG_BACKUPS_ENV = variable("request_log_backups")
REJECT_REASONS = {400: "unreadable", 413: "too_large", 415: "media_type", 422: "invalid"}
"""Error statuses the service answers on purpose; any other 4xx is ``client_error``, a 5xx ``server_error``."""
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

predicted_frames = bentoml.metrics.Counter(
    name="exprfusion_predicted_frames_total",
    documentation="Labelled frames per predicted class",
    labelnames=["class_name"],
)
missing_face_frames = bentoml.metrics.Counter(
    name="exprfusion_missing_face_frames_total", documentation="Labelled frames without a face (face_mask false)"
)
missing_audio_frames = bentoml.metrics.Counter(
    name="exprfusion_missing_audio_frames_total", documentation="Labelled frames without audio (audio_mask false)"
)
requests = bentoml.metrics.Counter(
    name="exprfusion_requests_total", documentation="Requests to a prediction endpoint", labelnames=["endpoint"]
)
rejected_requests = bentoml.metrics.Counter(
    name="exprfusion_rejected_requests_total",
    documentation="Prediction requests answered with an error, by reason",
    labelnames=["endpoint", "reason"],
)
prediction_latency = bentoml.metrics.Histogram(
    name="exprfusion_prediction_latency_seconds",
    documentation="Seconds from request to answer of answered prediction requests",
    labelnames=["endpoint"],
    buckets=LATENCY_BUCKETS,
)
reference_share = bentoml.metrics.Gauge(
    name="exprfusion_reference_share",
    documentation="The model's prediction_prior: expected share of frames per class (the drift reference)",
    labelnames=["class_name"],
    multiprocess_mode="livemax",
)
window_js_distance = bentoml.metrics.Gauge(
    name="exprfusion_window_js_distance",
    documentation="Jensen-Shannon distance (base 2) of this worker's last frames to the reference",
    multiprocess_mode="liveall",
)
window_psi = bentoml.metrics.Gauge(
    name="exprfusion_window_psi", documentation="PSI of this worker's last frames", multiprocess_mode="liveall"
)
window_missing_face_rate = bentoml.metrics.Gauge(
    name="exprfusion_window_missing_face_rate",
    documentation="Share of this worker's last frames without a face",
    multiprocess_mode="liveall",
)
window_frames = bentoml.metrics.Gauge(
    name="exprfusion_window_frames",
    documentation="Frames in this worker's drift window",
    multiprocess_mode="liveall",
)


def reject_reason(status: int) -> str | None:
    """The ``reason`` label of an answer's status; None for a success (below 400)."""
    if status < 400:
        return None
    return REJECT_REASONS.get(status, "server_error" if status >= 500 else "client_error")


class RequestMetrics:
    """ASGI middleware: counts requests to ``routes``, their rejections by reason, and the answered ones' latency.

    A route may hold path parameters (``/stream/{session}/append``): the ``endpoint`` label is the route as written,
    so the label values stay a small fixed set. It wraps every other middleware, so the request guard's 413 / 415 and
    BentoML's own validation 400s count too.
    """

    def __init__(self, app, routes: Iterable[str]) -> None:
        self.app = app
        self.routes = frozenset(routes)
        self._templates = [
            (re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(route)) + "$"), route)
            for route in sorted(self.routes)
            if "{" in route
        ]
        for route in self.routes:  # every series exists from the start, at 0, so rates and ratios are defined
            requests.labels(endpoint=route)
            for reason in (*REJECT_REASONS.values(), "client_error", "server_error"):
                rejected_requests.labels(endpoint=route, reason=reason)

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        """Call the app, noting the answer's status; count the request when its answer has started."""
        path = self._route(scope.get("path", "")) if scope["type"] == "http" else None
        if path is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before any answer is a server error

        async def noting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, noting_send)
        finally:
            requests.labels(endpoint=path).inc()
            reason = reject_reason(status)
            if reason is None:
                prediction_latency.labels(endpoint=path).observe(time.perf_counter() - started)
            else:
                rejected_requests.labels(endpoint=path, reason=reason).inc()

    def _route(self, path: str) -> str | None:
        """The route ``path`` belongs to (as written, parameters unfilled); None: not a counted route."""
        if path in self.routes:
            return path
        return next((route for pattern, route in self._templates if pattern.match(path)), None)


def post_routes(router: Any) -> list[str]:
    """The paths of a FastAPI / Starlette router's POST routes, included routers' too (as written, with parameters)."""
    paths = []
    for route in getattr(router, "routes", []):
        if "POST" in (getattr(route, "methods", None) or ()):
            paths.append(route.path)
        for inner in (getattr(route, "original_router", None), getattr(route, "app", None)):
            if inner is not None and inner is not router:
                paths.extend(post_routes(inner))
    return paths


@dataclass(frozen=True)
class MonitorSettings:
    """The drift window length (frames) of one worker."""

    drift_window: int = Environment.model_fields["drift_window"].default

    @classmethod
    def from_env(cls) -> MonitorSettings:
        """``EXPRFUSION_DRIFT_WINDOW`` if set, else the default."""
        return cls(drift_window=environment().drift_window)


def request_log_from_env(worker_index: int | None, service: str | None = None) -> RequestLog | None:
    """This worker's request log, as the environment asks for it; None when ``EXPRFUSION_REQUEST_LOG`` is ``off``.

    ``EXPRFUSION_REQUEST_LOG`` names the log (default ``logs/requests.jsonl``, under the directory the server was
    started in); each worker of each server writes its own file beside it (where, and under which name:
    :mod:`exprfusion.service.request_log_location`). ``EXPRFUSION_REQUEST_LOG_BYTES`` (default 10 MB) is the size
    at which a file is rotated (``.1``, ``.2``, ...), ``EXPRFUSION_REQUEST_LOG_BACKUPS`` (default 5) how many
    rotated files stay.
    """
    env = environment()
    setting = env.request_log.strip()
    if setting.lower() == "off":
        return None
    service = service or bentoml.server_context.service_name
    path = request_log_path(setting, service, worker_index)
    logging.getLogger("bentoml").info("request log of this worker: %s", path)  # BentoML prints this logger's lines
    return RequestLog(path, max_bytes=env.request_log_bytes, backups=env.request_log_backups)


class PredictionMonitor:
    """What one worker records of each labelled video: frame counters, its drift window, and the request log."""

    def __init__(
        self,
        model_version: str,
        prior: Iterable[float] | None,
        settings: MonitorSettings,
        request_log: RequestLog | None,
    ) -> None:
        self.model_version = model_version
        self.reference = None if not prior else reference_distribution(list(prior))
        self.window = PredictionWindow(settings.drift_window)
        self.request_log = request_log
        for name in CLASS_NAMES:  # every class's series exists from the start, at 0
            predicted_frames.labels(class_name=name)
        missing_face_frames.inc(0)
        missing_audio_frames.inc(0)
        if self.reference is not None:
            for name, share in zip(CLASS_NAMES, self.reference, strict=True):
                reference_share.labels(class_name=name).set(float(share))

    @property
    def drift_exported(self) -> bool:
        """Whether the reference and the drift gauges are exported (the model has a ``prediction_prior``)."""
        return self.reference is not None

    def observe(self, labels: np.ndarray, face_mask: np.ndarray, audio_mask: np.ndarray) -> None:
        """Record one labelled video: counters, this worker's drift window and gauges, one request-log record."""
        counts = np.bincount(labels, minlength=len(CLASS_NAMES))
        for name, count in zip(CLASS_NAMES, counts, strict=True):
            if count:
                predicted_frames.labels(class_name=name).inc(int(count))
        missing_face_frames.inc(int((~face_mask).sum()))
        missing_audio_frames.inc(int((~audio_mask).sum()))
        self.window.append(labels, face_mask, audio_mask)
        # Without a reference, the counts still give the window's missing-face rate (reference: any distribution).
        report = self.window.report(self.reference if self.reference is not None else np.ones(len(CLASS_NAMES)))
        window_missing_face_rate.set(_finite(report.missing_face_rate))
        window_frames.set(report.n_frames)
        if self.reference is not None:
            window_js_distance.set(_finite(report.js_distance))
            window_psi.set(_finite(report.psi))
        if self.request_log is not None:
            reference = None if self.reference is None else self.reference.tolist()
            self.request_log.write(request_record(labels, face_mask, audio_mask, self.model_version, reference))


def _finite(value: float) -> float:
    return 0.0 if math.isnan(value) else value
