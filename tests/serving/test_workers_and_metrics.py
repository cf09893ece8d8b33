"""How the service runs as an operator runs it: several workers with streaming, two servers on one host, a killed
worker. Real ``bentoml serve`` processes of one Bento (a small random model, ``random_bento.py``).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from random_bento import bento_env, build_random_bento, metric_value, npz_body, video

from exprfusion.inference.predict import predict_video
from exprfusion.model.artifact import load_model
from exprfusion.service.local_server import LocalServer, bentoml_serve

pytestmark = pytest.mark.slow

NPZ = {"content-type": "application/octet-stream"}


@pytest.fixture(scope="module")
def bento(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    """The Bento's tag, its BentoML home and the model file it serves."""
    root = tmp_path_factory.mktemp("operations")
    tag = build_random_bento(root / "build", bento_env(root / "bentoml"))
    return tag, root / "bentoml", root / "build" / "model.pt"


def serve(bento: tuple[str, Path, Path], log: Path, **settings: str) -> LocalServer:
    tag, home, _ = bento
    return bentoml_serve([tag], log, bento_env(home, **settings))


def prediction_workers(server: LocalServer) -> dict[int, str]:
    """The pids of the server's prediction workers (the entry service's), with their command lines."""
    children = psutil.Process(server.process.pid).children(recursive=True)
    return {
        child.pid: " ".join(child.cmdline())
        for child in children
        if "_bentoml_impl.worker.service" in " ".join(child.cmdline()) and "exprfusion-streams" not in child.cmdline()
    }


def predict_requests(url: str, count: int) -> None:
    """``count`` ``/predict_npz`` requests, each on a new connection (so the kernel may give each to any worker)."""
    body = npz_body(**video(40))
    for _ in range(count):
        assert httpx.post(f"{url}/predict_npz", content=body, headers=NPZ, timeout=60).status_code == 200


def test_two_workers_stream_every_append_of_a_session(bento, tmp_path):
    """20 appends to one session, each on a new connection to a server with 2 prediction workers: all 200, and the
    labels equal the model's offline labels. Control: requests on new connections did reach both workers."""
    _, _, model_path = bento
    frames = video(400, seed=1)
    model, inference, _ = load_model(model_path)
    offline, _ = predict_video(model, inference, **frames)
    with serve(bento, tmp_path / "server.log", EXPRFUSION_WORKERS="2") as server:
        assert len(prediction_workers(server)) == 2
        session = httpx.post(f"{server.url}/stream/open", timeout=60).json()["session"]
        labels: dict[int, int] = {}
        statuses = []
        for rows in np.array_split(np.arange(400), 20):
            chunk = npz_body(**{name: array[rows] for name, array in frames.items()})
            answer = httpx.post(f"{server.url}/stream/{session}/append", content=chunk, headers=NPZ, timeout=60)
            statuses.append(answer.status_code)
            if answer.status_code == 200:
                first = answer.json()["first_frame"]
                labels.update(enumerate(answer.json()["labels"], start=first))
        closed = httpx.post(f"{server.url}/stream/{session}/close", timeout=60).json()
        labels.update(enumerate(closed["labels"], start=closed["first_frame"]))
        assert statuses == [200] * 20, server.log_tail()
        assert [labels[frame] for frame in range(400)] == offline.tolist()
        predict_requests(server.url, 16)
        metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
        served_by = [
            pid for pid in prediction_workers(server) if metric_value(metrics, "exprfusion_window_frames", pid=str(pid))
        ]
        assert len(served_by) == 2, metrics


def test_a_second_server_keeps_the_first_servers_counters(bento, tmp_path):
    """Two servers of one Bento and one BentoML home: each one's request counter equals the requests sent to it,
    also those the first one got after the second started (BentoML empties its metrics folder at every start)."""
    _, home, _ = bento

    def counted(server: LocalServer) -> float | None:
        metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
        return metric_value(metrics, "exprfusion_requests_total", endpoint="/predict_npz")

    with serve(bento, tmp_path / "first.log") as first:
        predict_requests(first.url, 3)
        assert counted(first) == 3
        with serve(bento, tmp_path / "second.log") as second:
            predict_requests(first.url, 2)
            predict_requests(second.url, 4)
            assert (counted(first), counted(second)) == (5, 4)
            # Control: the second start did empty BentoML's own folder; the counters live in each server's own.
            assert not any((home / "prometheus_multiproc_dir").glob("counter_*.db"))
            folders = sorted((home / "exprfusion_metrics").glob("server-*"))
            assert {folder.name.split("-")[1] for folder in folders} >= {
                str(first.process.pid),
                str(second.process.pid),
            }


def test_a_killed_workers_series_disappear_and_its_death_is_logged(bento, tmp_path):
    """A prediction worker killed outright: its per-process drift gauges leave /metrics and the log says so."""
    with serve(bento, tmp_path / "server.log") as server:
        predict_requests(server.url, 1)
        (pid,) = prediction_workers(server)
        metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
        assert metric_value(metrics, "exprfusion_window_frames", pid=str(pid)) == 40  # control: it was there
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
            except httpx.HTTPError:
                metrics = ""  # the new worker is starting
            if metrics and metric_value(metrics, "exprfusion_window_frames", pid=str(pid)) is None:
                break
            time.sleep(1)
        assert metrics and f'pid="{pid}"' not in metrics, server.log_tail()
        assert f"worker process {pid} of this server is gone" in server.log.read_text(errors="replace")
        predict_requests(server.url, 1)  # the new worker answers
