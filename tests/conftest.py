"""Shared fixtures: small corpora built through the real writer, and a real MLflow server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from factories import make_record

from exprfusion.data.corpus_writer import CorpusWriter
from exprfusion.service.local_server import mlflow_server as start_mlflow_server


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


@pytest.fixture
def mlflow_server(tmp_path, monkeypatch) -> Iterator[str]:
    """A real `mlflow server` on a free port (sqlite backend, proxied artifacts), health-checked, then stopped.

    The test runs in ``tmp_path`` with ``MLFLOW_TRACKING_URI`` pointing at the server; yields the server's URL.
    """
    server = start_mlflow_server(
        f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "server-artifacts", tmp_path / "server.log"
    )
    try:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        yield server.url
    finally:
        server.stop()
