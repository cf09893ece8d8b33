"""The EXPRFUSION_* environment variables: one model with their types, bounds and defaults, read by the service."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from exprfusion.core.environment import ENV_PREFIX, Environment, environment, variable
from exprfusion.core.errors import InputError
from exprfusion.service.limits import ServingLimits
from exprfusion.service.metrics import MonitorSettings, request_log_from_env
from exprfusion.service.video_api import VideoLimits

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in Environment.model_fields:
        monkeypatch.delenv(variable(name), raising=False)


def test_unset_or_empty_variables_take_the_defaults(monkeypatch):
    monkeypatch.setenv("EXPRFUSION_MAX_FRAMES", "")
    env = environment()
    assert env == Environment() and env.max_frames == 108_000 and env.face_detector is None  # the model's detector
    assert env.torch_threads is None and env.visual_model is None


def test_the_service_reads_its_limits_and_logs_through_the_model(monkeypatch, tmp_path):
    monkeypatch.setenv("EXPRFUSION_MAX_REQUEST_BYTES", "1000")
    monkeypatch.setenv("EXPRFUSION_MAX_JSON_BYTES", "5000")
    monkeypatch.setenv("EXPRFUSION_MAX_STREAMS", " 3 ")
    monkeypatch.setenv("EXPRFUSION_DRIFT_WINDOW", "120")
    monkeypatch.setenv("EXPRFUSION_REQUEST_LOG", str(tmp_path / "requests.jsonl"))
    monkeypatch.setenv("EXPRFUSION_REQUEST_LOG_BACKUPS", "2")
    monkeypatch.setenv("BENTOML_RUNNER_MAP", '{"exprfusion": "http://127.0.0.1:3123"}')
    limits = ServingLimits.from_env()
    assert (limits.max_request_bytes, limits.max_json_bytes) == (1000, 1000), "a JSON body is never above any body"
    assert VideoLimits.from_env().max_streams == 3
    assert MonitorSettings.from_env().drift_window == 120
    log = request_log_from_env(0, "exprfusion")
    host = socket.gethostname().split(".")[0]
    assert log is not None and log.path == tmp_path / f"requests-{host}-3123-exprfusion-w0.jsonl"
    log.close()
    monkeypatch.setenv("EXPRFUSION_REQUEST_LOG", "off")
    assert request_log_from_env(0) is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("EXPRFUSION_MAX_FRAMES", "0", "EXPRFUSION_MAX_FRAMES: must be >= 1, got '0'"),
        ("EXPRFUSION_TORCH_THREADS", "four", "EXPRFUSION_TORCH_THREADS: must be a valid integer"),
        ("EXPRFUSION_STREAM_IDLE_SECONDS", "1.5", "EXPRFUSION_STREAM_IDLE_SECONDS: must be a valid integer"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(InputError) as caught:
        environment()
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_every_variable_the_code_names_is_in_the_model():
    """No EXPRFUSION_* variable is read past the model: each one named in src or serving is one of its fields."""
    named = set()
    for folder in ("src", "serving"):
        for path in (REPOSITORY / folder).rglob("*.py"):
            named |= set(re.findall(r"EXPRFUSION_([A-Z_]+[A-Z])", path.read_text()))
    fields = {name.upper() for name in Environment.model_fields}
    assert named <= fields, sorted(named - fields)
    assert ENV_PREFIX == "EXPRFUSION_"
