"""A real server on this machine: a free loopback port, a process group of its own, readiness, and a clean stop.

The tests and the benchmarks start ``bentoml serve`` (the packaged service), ``mlflow server`` and Prometheus through
here, so each starts, waits and stops the same way::

    with bentoml_serve([tag], log=workdir / "server.log", env=env) as server:
        httpx.post(f"{server.url}/predict", json=...)

The server runs in its own session (its own process group): :meth:`LocalServer.stop` signals the whole group, so
BentoML's and MLflow's worker processes stop with it. Readiness is a plain HTTP GET (standard library only) that
must answer 200 before the deadline; a server that exits or never answers is stopped and reported with its log's
tail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port free on the loopback interface (the operating system's choice)."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def executable(name: str) -> str:
    """The console script ``name`` of this interpreter's environment, else the one on ``PATH``, else ``name``."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def start_process(
    command: Sequence[str], log: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``command`` (in ``cwd``, default this process's working directory) in its own session (so
    :func:`stop_process` reaches its children), output going to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        return subprocess.Popen(
            list(command),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process(process: subprocess.Popen, grace: float = 30.0) -> None:
    """Stop a process started by :func:`start_process` and its process group: SIGTERM, then SIGKILL after ``grace``
    seconds. A process that has already exited is left alone; so is a group already gone."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except ProcessLookupError:
        process.wait()
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def answers(url: str, timeout: float = 2.0) -> bool:
    """Whether a GET of ``url`` answers 200 within ``timeout`` seconds."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _log_tail(log: Path, characters: int) -> str:
    return log.read_text(errors="replace")[-characters:] if log.exists() else ""


def wait_until_ready(url: str, process: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    """Poll ``url`` until it answers 200; raise RuntimeError, with the log's tail, if the process exits first or
    ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not answers(url):
        if process.poll() is not None:
            raise RuntimeError(
                f"the server exited ({process.returncode}) before {url} answered:\n{_log_tail(log, 4000)}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f} s:\n{_log_tail(log, 4000)}")
        time.sleep(0.3)


@dataclass
class LocalServer:
    """A running server: its base URL, its process (the leader of its own process group) and its log file."""

    url: str
    process: subprocess.Popen
    log: Path

    def log_tail(self, characters: int = 4000) -> str:
        """The end of the server's log, for failure messages."""
        return _log_tail(self.log, characters)

    def stop(self, grace: float = 30.0) -> None:
        """Stop the server and every process of its group (:func:`stop_process`)."""
        stop_process(self.process, grace)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve(
    command: Sequence[str],
    port: int,
    log: Path,
    ready_path: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
    cwd: Path | None = None,
) -> LocalServer:
    """Start ``command`` (which must listen on ``127.0.0.1:port``) in ``cwd`` and wait until ``ready_path`` answers
    200.

    On failure (the process exits, or ``timeout`` passes) the process group is stopped and RuntimeError raised.
    """
    process = start_process(command, log, env, cwd)
    url = f"http://{LOOPBACK}:{port}"
    try:
        wait_until_ready(f"{url}{ready_path}", process, log, timeout)
    except BaseException:
        stop_process(process)
        raise
    return LocalServer(url=url, process=process, log=log)


def bentoml_serve(
    arguments: Sequence[str],
    log: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 180.0,
    cwd: Path | None = None,
) -> LocalServer:
    """``bentoml serve <arguments>`` (a Bento tag, or a service import path and its options) on a free loopback
    port, started in ``cwd``, ready once ``/readyz`` answers. ``env`` carries ``BENTOML_HOME`` and the service's
    settings."""
    port = free_port()
    command = [executable("bentoml"), "serve", *arguments, "--host", LOOPBACK, "--port", str(port)]
    return serve(command, port, log, "/readyz", env, timeout, cwd)


def mlflow_server(
    backend_store_uri: str,
    artifacts_destination: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    workers: int = 1,
    timeout: float = 120.0,
) -> LocalServer:
    """``mlflow server`` with the given backend store and proxied artifacts on a free loopback port, ready once
    ``/health`` answers."""
    port = free_port()
    command = [
        executable("mlflow"), "server",
        "--backend-store-uri", backend_store_uri,
        "--artifacts-destination", str(artifacts_destination),
        "--host", LOOPBACK, "--port", str(port),
        "--workers", str(workers),
    ]  # fmt: skip
    return serve(command, port, log, "/health", env, timeout)
