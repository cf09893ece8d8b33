"""The video routes over HTTP, against a real ``bentoml serve`` of a Bento packaged with the tiny artefact.

The Bento is built by the real package stage script and served as in ``tests/serving``
(``exprfusion.service.local_server``), with two stream slots and a 5-second video limit.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from servers import package_bento
from video.video_factories import N_FRAMES, write_face_video, write_truncated_video

from exprfusion.inference.predict import predict_video
from exprfusion.model.artifact import load_model
from exprfusion.service.local_server import bentoml_serve

pytestmark = [pytest.mark.slow, pytest.mark.integration]

MAX_STREAMS = 2
MAX_VIDEO_SECONDS = 5
REGISTRATION = {  # what training registered, as reports/registration.json holds it (the package stage reads it)
    "run_id": "0" * 32,
    "name": "exprfusion-fusion",
    "version": 1,
    "model_uri": "models:/exprfusion-fusion/1",
    "macro_f1": 0.25,
    "corpus_hash": "0" * 64,
    "promoted": True,
    "decision": "first champion",
}


@pytest.fixture(scope="module")
def service(tmp_path_factory, tiny_artefact: Path) -> Iterator[str]:
    """Package the tiny artefact and serve it; the URL."""
    root = tmp_path_factory.mktemp("video-served")
    env = {
        **os.environ,
        "BENTOML_HOME": str(root / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "True",
        "EXPRFUSION_MAX_STREAMS": str(MAX_STREAMS),
        "EXPRFUSION_MAX_VIDEO_SECONDS": str(MAX_VIDEO_SECONDS),
    }
    tag, _ = package_bento(root / "work", tiny_artefact, env, REGISTRATION)
    with bentoml_serve([tag], root / "server.log", env) as server:
        yield server.url


@pytest.fixture(scope="module")
def client(service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service, timeout=300) as session:
        yield session


def test_predict_video_equals_the_cli(client, cli_run, face_video):
    answer = client.post(
        "/predict_video",
        content=face_video.read_bytes(),
        headers={"content-type": "application/octet-stream"},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    table = pd.read_csv(cli_run[0])
    assert body["labels"] == table["label"].tolist() and len(body["labels"]) == N_FRAMES
    np.testing.assert_allclose(body["timestamps_s"], table["time_s"], atol=1e-6)
    assert body["summary"]["fps"] == table["fps"][0]
    assert [box is not None for box in body["face_boxes"]] == table["face"].tolist()


def test_a_video_over_the_duration_limit_gets_413(client, tmp_path):
    long_video = write_face_video(tmp_path / "long.mp4", n_frames=60, fps=10, blank=())  # 6 s > 5 s
    answer = client.post(
        "/predict_video", content=long_video.read_bytes(), headers={"content-type": "application/octet-stream"}
    )
    assert answer.status_code == 413 and "limit of 5" in answer.json()["error"], answer.text
    garbage = client.post(
        "/predict_video", content=b"not a video", headers={"content-type": "application/octet-stream"}
    )
    assert garbage.status_code == 400 and "request" in garbage.json()["error"]


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_a_stream_over_http_equals_offline_and_the_session_limit_answers_429(client, tiny_artefact):
    model, inference, _ = load_model(tiny_artefact)
    rng = np.random.default_rng(0)
    n = 40
    video = {
        "visual": rng.normal(size=(n, 32)).astype(np.float32),
        "audio": rng.normal(size=(n, 16)).astype(np.float32),
        "face_mask": rng.random(n) > 0.2,
        "audio_mask": np.ones(n, bool),
    }
    offline, _ = predict_video(model, inference, **video)
    sessions = []
    for _ in range(MAX_STREAMS):
        opened = client.post("/stream/open", params={"fps": 10})
        assert opened.status_code == 200, opened.text
        sessions.append(opened.json())
    refused = client.post("/stream/open")
    assert refused.status_code == 429 and "limit" in refused.json()["error"]
    first = sessions[0]
    assert first["delay_frames"] == inference.window + inference.median_kernel // 2
    labels = []
    for start in range(0, n, 7):
        chunk = {key: value[start : start + 7] for key, value in video.items()}
        update = client.post(f"/stream/{first['session']}/append", content=_npz(**chunk))
        assert update.status_code == 200, update.text
        assert update.json()["first_frame"] == len(labels)
        labels += update.json()["labels"]
    assert len(labels) == n - first["delay_frames"]  # everything but the tail is final before close
    closed = client.post(f"/stream/{first['session']}/close")
    assert closed.status_code == 200, closed.text
    labels += closed.json()["labels"]
    assert labels == offline.tolist()
    np.testing.assert_allclose(closed.json()["timestamps_s"][-1], (n - 1) / 10)
    assert client.post(f"/stream/{first['session']}/append", content=_npz(**video)).status_code == 404
    reopened = client.post("/stream/open")  # the closed session's slot is free again
    assert reopened.status_code == 200
    for session in (sessions[1], reopened.json()):
        assert client.post(f"/stream/{session['session']}/close").status_code == 200


def test_a_truncated_video_answers_its_decoded_and_declared_frames_with_timings(client, tmp_path):
    _, truncated = write_truncated_video(
        tmp_path / "half.mp4", n_frames=40
    )  # declares 40 frames (4 s), holds about half
    answer = client.post(
        "/predict_video", content=truncated.read_bytes(), headers={"content-type": "application/octet-stream"}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    decoded = len(body["labels"])
    assert 0 < decoded < 40
    assert body["summary"]["decoded_frames"] == decoded and body["summary"]["declared_frames"] == 40
    assert any(f"decoded {decoded} of the 40 frames" in line for line in body["warnings"]), body["warnings"]
    assert all(str(tmp_path) not in line for line in body["warnings"])  # the upload's temporary name is not shown
    timing = answer.headers["server-timing"]
    assert timing.startswith("features;dur=") and ", model;dur=" in timing


def test_an_empty_body_is_named_as_such(client):
    answer = client.post("/predict_video", content=b"", headers={"content-type": "application/octet-stream"})
    assert answer.status_code == 400 and "the body is empty" in answer.json()["error"], answer.text
