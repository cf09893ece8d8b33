"""Shared fixtures: small corpora built through the real writer, and a real MLflow server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from factories import make_record

from exprfusion.corpus import CorpusWriter


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    """A corpus of four videos: two train (one a _left/_right pair), one validation, one test."""
    root = tmp_path / "corpus"
    with CorpusWriter(root) as writer:
        writer.add(make_record("a_left", "train", seed=1))
        writer.add(make_record("a_right", "train", seed=2))
        writer.add(make_record("b", "validation", n=55, seed=3, fps=25.0))
        writer.add(make_record("c", "test", n=30, seed=4))
    return root


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path, monkeypatch) -> Iterator[str]:
    """A real `mlflow server` on a free port (sqlite backend, proxied artifacts), health-checked, then stopped.

    The test runs in ``tmp_path`` with ``MLFLOW_TRACKING_URI`` pointing at the server; yields the server's URL.
    """
    port = _free_port()
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination",
        str(tmp_path / "server-artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start:\n{(tmp_path / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
