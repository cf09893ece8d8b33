"""Fixtures of the extraction tests: the tiny models are saved once per session, the media trees per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from extract.media_factories import TinyTree, save_tiny_beit, save_tiny_wavlm, write_tiny_tree


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding ``beit/`` and ``wavlm/``: tiny random models saved with save_pretrained."""
    folder = tmp_path_factory.mktemp("models")
    save_tiny_beit(folder / "beit")
    save_tiny_wavlm(folder / "wavlm")
    return folder


@pytest.fixture
def tiny_tree(tmp_path: Path, tiny_models: Path) -> TinyTree:
    """The official layout of five tiny videos (faces with gaps, mp4 files with a tone, one without audio)."""
    return write_tiny_tree(tmp_path / "affwild2", models=tiny_models)


@pytest.fixture(autouse=True)
def one_torch_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tiny models run fastest on one thread (on a busy machine, threads mostly wait for each other); extraction
    runs in this process unless a test asks for Ray."""
    import torch

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
