"""Every ``EXPRFUSION_*`` environment variable, with its type, bounds and default: :class:`Environment`.

The service (limits, monitoring, the video routes, its torch threads) and the search's test hook read them through
:func:`environment`, never ``os.environ`` directly. An unset or empty variable takes the default; a bad value is one
:class:`~exprfusion.core.errors.InputError` line naming the variable (``EXPRFUSION_MAX_FRAMES: must be >= 1, got
'0'``). The variables are the deployment's interface: their names do not change.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from exprfusion.core.errors import InputError
from exprfusion.core.settings import describe

ENV_PREFIX = "EXPRFUSION_"
Positive = Annotated[int, Field(ge=1)]


class Environment(BaseSettings):
    """The ``EXPRFUSION_*`` variables (each field ``name`` is read from ``EXPRFUSION_<NAME>``)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="ignore", frozen=True)

    # Request limits (exprfusion.service.limits): frames of one video (one hour at 30 fps), bytes of a request body
    # (an hour of 1024 + 1024-wide float32 features as .npz is 0.9 GB) and of a JSON body (about three minutes of
    # such features written as numbers; it costs far more memory per value to parse).
    max_frames: Positive = 108_000
    max_request_bytes: Positive = 1 << 30
    max_json_bytes: Positive = 256 << 20
    # Video routes (exprfusion.service.video_api): upload size and length, open streams, idle seconds before a
    # stream is dropped; folders replacing the extractor's moved checkpoints, and the face detector (``haar`` or an
    # import path, exprfusion.sources.extract.faces.load_detector).
    max_video_bytes: Positive = 512 << 20
    max_video_seconds: Positive = 600
    max_streams: Positive = 8
    stream_idle_seconds: Positive = 60
    visual_model: str | None = None
    audio_model: str | None = None
    face_detector: str | None = None  # None: the detector of the model's training faces, else haar
    # Monitoring (exprfusion.service.metrics): frames in each worker's drift window; the request log (``off``: none;
    # each worker writes ``<stem>-w<index><suffix>``), its rotation size and the rotated files kept.
    drift_window: Positive = 9000
    request_log: str = "logs/requests.jsonl"
    request_log_bytes: Positive = 10_000_000
    request_log_backups: Positive = 5
    # Prediction workers of the service (``make serve WORKERS=N``; streaming sessions live in one streaming worker
    # beside them, exprfusion.service.stream_api), and the torch threads of each (unset: the cores shared out).
    workers: Positive = 1
    torch_threads: Positive | None = None
    # A test hook of the search (exprfusion.search.trial): "<trial number>:<seconds>[,...]" makes the trials so
    # numbered wait that long before each report to the scheduler; empty, nothing waits.
    trial_report_delay: str = ""


def variable(field: str) -> str:
    """The environment variable that sets ``field`` of :class:`Environment`."""
    return ENV_PREFIX + field.upper()


def environment() -> Environment:
    """The variables as they are set now (read on every call); a bad value is an ``InputError`` naming it."""
    try:
        return Environment()
    except ValidationError as error:
        raise InputError(describe(error, name=lambda location: variable(str(location[0])))) from None
