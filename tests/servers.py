"""Real servers for the tests: a free loopback port, a process in its own session, readiness, and a clean stop.

One home for what the MLflow, BentoML and Prometheus fixtures each need.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from factories import git_repository

REPOSITORY = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port free on the loopback interface."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(command: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """Start ``command`` in its own session (so :func:`stop` reaches its workers), its output going to ``log``."""
    with log.open("wb") as sink:
        return subprocess.Popen(
            list(command),
            env=dict(env) if env is not None else None,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    """Poll ``url`` until it answers 200; fail with the log's tail if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer:\n{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.3)


def stop(process: subprocess.Popen) -> None:
    """Stop a process started by :func:`start`, and its children (SIGTERM, then SIGKILL after 30 s)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def bentoml_serve(arguments: Sequence[str], env: Mapping[str, str], log: Path) -> tuple[str, subprocess.Popen]:
    """``bentoml serve <arguments>`` on a free loopback port, waited for until ``/readyz`` answers; returns its URL
    and process (stop it with :func:`stop`)."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "bentoml"), "serve", *arguments]
    process = start([*command, "--host", "127.0.0.1", "--port", str(port)], log, env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/readyz", process, log)
    except BaseException:
        stop(process)
        raise
    return url, process


def package_bento(
    workdir: Path, model_path: Path, env: Mapping[str, str], registration: Mapping[str, Any] | None = None
) -> tuple[str, str]:
    """Run the real package stage script on ``model_path`` in ``workdir`` (made a git repository); return the
    Bento tag it built (in ``env``'s ``BENTOML_HOME``) and the commit."""
    commit = git_repository(workdir)
    (workdir / "models").mkdir(parents=True)
    (workdir / "reports").mkdir()
    (workdir / "models" / "model.pt").write_bytes(model_path.read_bytes())
    (workdir / "reports" / "metrics.json").write_text(json.dumps({"split": "validation", "macro_f1": 0.25}))
    (workdir / "reports" / "registration.json").write_text(json.dumps(dict(registration or {})))
    (workdir / "params.yaml").write_text("package:\n  smoke_frames: 64\n")
    done = subprocess.run(
        [sys.executable, str(REPOSITORY / "pipelines" / "package.py")],
        cwd=workdir,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((workdir / "models" / "package" / "bento.json").read_text())["bento"], commit
