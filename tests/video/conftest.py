"""Fixtures of the video tests: tiny saved BEiT/WavLM models, the face video, the tiny artefact, one CLI run."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from extract.media_factories import save_tiny_beit, save_tiny_wavlm
from video.video_factories import save_tiny_artefact, write_face_video


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``beit/`` and ``wavlm/``: tiny random models saved with save_pretrained."""
    folder = tmp_path_factory.mktemp("models")
    save_tiny_beit(folder / "beit")
    save_tiny_wavlm(folder / "wavlm")
    return folder


@pytest.fixture(scope="session")
def face_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The face video (30 frames at 10 fps, face blanked on BLANK_FRAMES, tone from 1 s)."""
    return write_face_video(tmp_path_factory.mktemp("video") / "clip.mp4")


@pytest.fixture(scope="session")
def tiny_artefact(tmp_path_factory: pytest.TempPathFactory, tiny_models: Path) -> Path:
    """The tiny fusion model whose metadata records the tiny models as its extractor."""
    return save_tiny_artefact(tmp_path_factory.mktemp("artefact") / "model.pt", tiny_models)


@pytest.fixture(scope="session")
def cli_run(tmp_path_factory: pytest.TempPathFactory, tiny_artefact: Path, face_video: Path) -> tuple[Path, Path]:
    """``exprfusion predict --video --out --overlay --probabilities``, run once as a real subprocess; its outputs."""
    out = tmp_path_factory.mktemp("cli")
    csv, overlay = out / "labels.csv", out / "overlay.mp4"
    result = subprocess.run(
        [sys.executable, "-m", "exprfusion", "predict", "--model", str(tiny_artefact), "--video", str(face_video),
         "--out", str(csv), "--overlay", str(overlay), "--probabilities", "--device", "cpu"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return csv, overlay


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
