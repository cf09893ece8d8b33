"""A real ``bentoml serve`` of the Bento the package stage builds, once per test module.

The model is trained on the spot (a tiny corpus with a planted signal, two epochs of a 16-wide model), packaged by
the real stage script (``pipelines/package.py``, run in a temporary working directory) into a temporary
``BENTOML_HOME``, and served on a free loopback port with a small request-body limit.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
from factories import git_repository, write_learnable_corpus

from exprfusion.artifact import save_model
from exprfusion.corpus import Corpus
from exprfusion.model import FusionConfig
from exprfusion.train import TrainConfig, train_model, training_metadata

REPOSITORY = Path(__file__).resolve().parents[2]
BODY_LIMIT = 4_000_000  # bytes; the default (1 GiB) is too large to send in a test
TINY_MODEL = FusionConfig(d_model=16, n_layers=1, n_heads=2)
TINY_TRAIN = TrainConfig(
    epochs=2, batch_size=8, window=16, stride=8, eval_stride=4, median_kernel=5, lr=3e-3, device="cpu"
)
REGISTRATION = {"name": "exprfusion-fusion", "version": 7, "promoted": True, "decision": "no champion yet"}


@dataclass
class Served:
    """A running service and what it was built from."""

    url: str
    model_path: Path
    corpus: Path
    process: subprocess.Popen[bytes]
    log: Path
    package_commit: str  # the commit the package stage ran at (the model card's git_commit)
    registration: dict = field(default_factory=lambda: dict(REGISTRATION))  # what training registered
    initial_workers: set[int] = field(default_factory=set)

    def worker_pids(self) -> set[int]:
        """The processes under the server (BentoML's workers): a crashed worker would come back with a new pid."""
        return {child.pid for child in psutil.Process(self.process.pid).children(recursive=True)}

    def log_tail(self, characters: int = 4000) -> str:
        """The end of the server's log, for failure messages."""
        return self.log.read_text(errors="replace")[-characters:]


def free_port() -> int:
    """A TCP port free on the loopback interface."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _package(workdir: Path, model_path: Path, env: dict[str, str]) -> tuple[str, str]:
    """Run the package stage script in ``workdir`` (a git repository); return the Bento tag and the commit."""
    commit = git_repository(workdir)
    (workdir / "models").mkdir(parents=True)
    (workdir / "reports").mkdir()
    (workdir / "models" / "model.pt").write_bytes(model_path.read_bytes())
    (workdir / "reports" / "metrics.json").write_text(json.dumps({"split": "validation", "macro_f1": 0.25}))
    (workdir / "reports" / "registration.json").write_text(json.dumps(REGISTRATION))
    (workdir / "params.yaml").write_text("package:\n  smoke_frames: 64\n")
    done = subprocess.run(
        [sys.executable, str(REPOSITORY / "pipelines" / "package.py")],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((workdir / "models" / "package" / "bento.json").read_text())["bento"], commit


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"bentoml serve did not become ready:\n{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.3)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server and its workers (its own process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Train, package (real stage script, temporary BENTOML_HOME), serve; stop the server after the module."""
    root = tmp_path_factory.mktemp("served")
    corpus = write_learnable_corpus(root / "corpus")
    result = train_model(corpus, TINY_MODEL, TINY_TRAIN)
    model_path = save_model(
        root / "model.pt", result.model, TINY_TRAIN.inference(), training_metadata(result, TINY_TRAIN, Corpus(corpus))
    )
    env = {
        **os.environ,
        "BENTOML_HOME": str(root / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "True",
        "EXPRFUSION_MAX_REQUEST_BYTES": str(BODY_LIMIT),
    }
    tag, commit = _package(root / "work", model_path, env)
    port = free_port()
    log = root / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "bentoml"), "serve", tag, "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_ready(url, process, log)
        served = Served(url=url, model_path=model_path, corpus=corpus, process=process, log=log, package_commit=commit)
        served.initial_workers = served.worker_pids()
        yield served
    finally:
        _stop(process)
