"""A real ``bentoml serve`` of the service with two workers, and the Debian ``prometheus`` / ``promtool`` binaries.

The model is trained on the spot (the planted-signal corpus, two epochs of a 16-wide model; its metadata carries the
``prediction_prior``), put into a temporary BentoML store by the library (``package_model``, ``store_model``) and
served from this checkout's ``serving.service`` on a free loopback port, with two prediction workers
(``EXPRFUSION_WORKERS=2``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from factories import write_learnable_corpus

from exprfusion.data.corpus import Corpus
from exprfusion.model.artifact import save_model
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.service.local_server import LocalServer, bentoml_serve, free_port, serve
from exprfusion.training.train import train_model, training_metadata
from exprfusion.training.train_config import TrainConfig

REPOSITORY = Path(__file__).resolve().parents[2]
TINY_MODEL = FusionConfig.paper(d_model=16, n_layers=1, n_heads=2)
TINY_TRAIN = TrainConfig(
    epochs=2, batch_size=8, window=16, stride=8, eval_stride=4, median_kernel=5, lr=3e-3, device="cpu"
)


@dataclass
class Served:
    """A running two-worker service and what it was built from."""

    url: str
    model_path: Path
    corpus: Path
    request_log: Path  # EXPRFUSION_REQUEST_LOG (each worker writes <stem>-<host>-<port>-<service>-w<index>.jsonl)
    log: Path

    def log_tail(self, characters: int = 4000) -> str:
        """The end of the server's log, for failure messages."""
        return self.log.read_text(errors="replace")[-characters:]


@pytest.fixture(scope="session")
def prometheus_bin() -> Path:
    """The folder holding ``prometheus`` and ``promtool``; Debian's package is installed when missing (as root)."""
    if shutil.which("promtool") is None or shutil.which("prometheus") is None:
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            pytest.skip("prometheus is not installed and apt-get cannot install it here (needs apt-get as root)")
        done = subprocess.run(
            ["apt-get", "install", "-y", "-q", "prometheus"],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        if done.returncode != 0 or shutil.which("prometheus") is None:
            pytest.skip(f"apt-get install prometheus failed: {done.stderr[-500:]}")
    return Path(shutil.which("prometheus")).parent


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Train, store, serve with two workers; stop the server at the end of the session."""
    root = tmp_path_factory.mktemp("monitored")
    corpus = write_learnable_corpus(root / "corpus")
    result = train_model(corpus, TINY_MODEL, TINY_TRAIN)
    model_path = save_model(
        root / "model.pt", result.model, TINY_TRAIN.inference(), training_metadata(result, TINY_TRAIN, Corpus(corpus))
    )
    request_log = root / "logs" / "requests.jsonl"
    env = {
        **os.environ,
        "BENTOML_HOME": str(root / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "True",
        "EXPRFUSION_WORKERS": "2",  # what make serve WORKERS=2 sets
        "EXPRFUSION_REQUEST_LOG": str(request_log),
        "EXPRFUSION_DRIFT_WINDOW": "100000",
    }
    store = (
        "import sys; from exprfusion.tracking.packaging import package_model, store_model; "
        "print(store_model(package_model(sys.argv[1], sys.argv[2], metrics={}, smoke_frames=32).parent))"
    )
    done = subprocess.run(
        [sys.executable, "-c", store, str(model_path), str(root / "package")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    tag = done.stdout.strip().splitlines()[-1]
    log = root / "server.log"
    arguments = ["serving.service:ExpressionService", "--working-dir", str(REPOSITORY), "--arg", f"model_tag={tag}"]
    with bentoml_serve(arguments, log, env) as server:
        yield Served(url=server.url, model_path=model_path, corpus=corpus, request_log=request_log, log=log)


@pytest.fixture
def start_prometheus(prometheus_bin: Path, tmp_path: Path) -> Iterator[Callable[[str, list[Path]], str]]:
    """A factory: ``start_prometheus(target, rule_files)`` runs Prometheus on a free loopback port, scraping
    ``target`` (host:port) every second and evaluating the rules every second; returns its URL. Stopped after the test.
    """
    servers: list[LocalServer] = []

    def start(target: str, rule_files: list[Path]) -> str:
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: {[str(path) for path in rule_files]}\n"
            f"scrape_configs: [{{job_name: exprfusion, static_configs: [{{targets: ['{target}']}}]}}]\n"
        )
        port = free_port()
        command = [str(prometheus_bin / "prometheus"), f"--config.file={config}"]
        command += [f"--web.listen-address=127.0.0.1:{port}", f"--storage.tsdb.path={tmp_path / 'tsdb'}"]
        servers.append(serve(command, port, tmp_path / "prometheus.log", "/-/ready", timeout=30))
        return servers[-1].url

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
