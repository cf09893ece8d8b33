"""Where a service worker writes its request log (exprfusion.service.request_log_location), in real processes.

A worker's working directory is the served Bento's folder, inside BentoML's store; the log must follow the directory
the server was started in (the worker's parent's working directory), one file per worker of each server, and never
lie inside the store. Each case runs a "server" process in one directory that starts a "worker" process in another.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = """
import sys
from exprfusion.core.errors import InputError
from exprfusion.service.request_log_location import request_log_path
try:
    print(request_log_path(sys.argv[1], "exprfusion", int(sys.argv[2])))
except InputError as error:
    print("refused:", error)
"""
SERVER = (  # runs in the server's directory; starts the worker (argv[1]) in argv[2] with the rest of its arguments
    "import subprocess, sys; subprocess.run([sys.executable, '-c', sys.argv[1], *sys.argv[3:]], cwd=sys.argv[2], "
    "check=True)"
)
HOST = socket.gethostname().split(".")[0]


def worker_log(setting: str, server_dir: Path, worker_dir: Path, home: Path, port: int = 3000, worker: int = 1) -> str:
    """What a worker started from ``worker_dir`` by a server running in ``server_dir`` resolves ``setting`` to."""
    env = {
        **os.environ,
        "BENTOML_HOME": str(home),
        "BENTOML_RUNNER_MAP": json.dumps({"exprfusion": f"http://127.0.0.1:{port}"}),
    }
    done = subprocess.run(
        [sys.executable, "-c", SERVER, WORKER, str(worker_dir), setting, str(worker)],
        cwd=server_dir, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """A project folder, BentoML's home, and a Bento inside its store (``bento.yaml`` beside ``src/``)."""
    project, home = tmp_path / "project", tmp_path / "bentoml"
    bento = home / "bentos" / "exprfusion" / "abc123"
    (bento / "src").mkdir(parents=True)
    (bento / "bento.yaml").write_text("service: serving.service:ExpressionService\n")
    project.mkdir()
    return {"project": project, "home": home, "bento_src": bento / "src", "bento": bento}


def test_a_relative_log_follows_the_directory_the_server_started_in(layout):
    resolved = worker_log("logs/requests.jsonl", layout["project"], layout["bento_src"], layout["home"])
    assert resolved == str(layout["project"] / "logs" / f"requests-{HOST}-3000-exprfusion-w1.jsonl")
    assert not resolved.startswith(str(layout["home"])), "control: the worker itself runs inside the store"


def test_each_worker_of_each_server_has_its_own_file(layout):
    args = ("logs/requests.jsonl", layout["project"], layout["bento_src"], layout["home"])
    names = {worker_log(*args, port=port, worker=worker) for port in (3000, 3001) for worker in (1, 2)}
    assert len(names) == 4 and all(Path(name).parent == layout["project"] / "logs" for name in names)


def test_a_log_is_never_inside_the_bento_store(layout):
    inside = layout["bento"] / "logs" / "requests.jsonl"
    refused = worker_log(str(inside), layout["project"], layout["bento_src"], layout["home"])
    assert refused.startswith("refused: EXPRFUSION_REQUEST_LOG=") and "inside the Bento folder" in refused
    # A server started from inside the store: its relative log goes to $BENTOML_HOME/logs/ instead.
    moved = worker_log("logs/requests.jsonl", layout["bento_src"], layout["bento_src"], layout["home"])
    assert moved == str(layout["home"] / "logs" / f"requests-{HOST}-3000-exprfusion-w1.jsonl")
    # Control: an absolute path outside the store is used as given.
    outside = layout["project"] / "elsewhere" / "r.jsonl"
    given = worker_log(str(outside), layout["project"], layout["bento_src"], layout["home"])
    assert given == str(outside.parent / f"r-{HOST}-3000-exprfusion-w1.jsonl")
