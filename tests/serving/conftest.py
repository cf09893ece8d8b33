"""A real ``bentoml serve`` of the Bento the package stage builds, once per test module.

The model is trained on the spot (a tiny corpus with a planted signal, two epochs of a 16-wide model), packaged by
the real stage script (``pipelines/package.py``, run in a temporary project folder) into a temporary
``BENTOML_HOME``, and served on a free loopback port with a small request-body limit, started in that project folder
(so its request log goes to the project's ``logs/``, the default).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from factories import write_learnable_corpus
from servers import package_bento

from exprfusion.data.corpus import Corpus
from exprfusion.model.artifact import save_model
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.service.local_server import bentoml_serve
from exprfusion.training.train import train_model, training_metadata
from exprfusion.training.train_config import TrainConfig

REPOSITORY = Path(__file__).resolve().parents[2]
BODY_LIMIT = 4_000_000  # bytes; the default (1 GiB) is too large to send in a test
TINY_MODEL = FusionConfig.paper(d_model=16, n_layers=1, n_heads=2)
TINY_TRAIN = TrainConfig(
    epochs=2, batch_size=8, window=16, stride=8, eval_stride=4, median_kernel=5, lr=3e-3, device="cpu"
)
REGISTRATION = {
    "run_id": "0" * 32,
    "name": "exprfusion-fusion",
    "version": 7,
    "model_uri": "models:/exprfusion-fusion/7",
    "macro_f1": 0.25,
    "corpus_hash": "0" * 64,
    "promoted": True,
    "decision": "no champion yet",
}


@dataclass
class Served:
    """A running service and what it was built from."""

    url: str
    model_path: Path
    corpus: Path
    process: subprocess.Popen[bytes]
    log: Path
    package_commit: str  # the commit the package stage ran at (the model card's git_commit)
    project: Path  # where the package stage ran and the server was started (models/package/, logs/)
    env: dict[str, str] = field(default_factory=dict)  # the server's environment (BENTOML_HOME, limits)
    tag: str = ""  # the Bento served
    registration: dict = field(default_factory=lambda: dict(REGISTRATION))  # what training registered
    initial_workers: set[int] = field(default_factory=set)

    def worker_pids(self) -> set[int]:
        """The processes under the server (BentoML's workers): a crashed worker would come back with a new pid."""
        return {child.pid for child in psutil.Process(self.process.pid).children(recursive=True)}

    def log_tail(self, characters: int = 4000) -> str:
        """The end of the server's log, for failure messages."""
        return self.log.read_text(errors="replace")[-characters:]


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
    project = root / "work"
    tag, commit = package_bento(project, model_path, env, REGISTRATION)
    server = bentoml_serve([tag], root / "server.log", env, cwd=project)
    try:
        served = Served(
            url=server.url,
            model_path=model_path,
            corpus=corpus,
            process=server.process,
            log=server.log,
            package_commit=commit,
            project=project,
            env=env,
            tag=tag,
        )
        served.initial_workers = served.worker_pids()
        yield served
    finally:
        server.stop()
