"""exprfusion.service.local_server with a stand-in server (``python -m http.server``): readiness means a 200 on the
ready path, a failed start reports the log and leaves nothing running, and a stop ends the server's whole group."""

from __future__ import annotations

import re
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from exprfusion.service.local_server import free_port, serve


def http_server(port: int, folder: Path, child_seconds: int = 120) -> list[str]:
    """A shell that starts a ``sleep`` in the background, prints its pid, then becomes an HTTP server of ``folder``:
    the sleep stands for a server's worker processes."""
    server = f"exec {sys.executable} -m http.server {port} --bind 127.0.0.1 --directory {folder}"
    return ["sh", "-c", f"sleep {child_seconds} & echo child $!; {server}"]


def logged_child(log: Path) -> int:
    return int(re.search(r"child (\d+)", log.read_text()).group(1))


def running(pid: int) -> bool:
    """The process runs (a zombie waiting to be reaped has stopped)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def gone(pid: int, within: float = 5.0) -> bool:
    """The process stops running within ``within`` seconds (a signal takes a moment to be acted on)."""
    deadline = time.monotonic() + within
    while running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_ready_server_answers_and_stops_with_its_children(tmp_path):
    (tmp_path / "ready").write_text("yes")
    port = free_port()
    server = serve(http_server(port, tmp_path), port, tmp_path / "server.log", "/ready", timeout=30)
    with server:
        assert server.url == f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{server.url}/ready", timeout=5) as response:
            assert response.read() == b"yes"
        child = logged_child(server.log)
        assert running(child) and running(server.process.pid), "both run while the server is up"
    assert server.process.poll() is not None
    assert gone(child), "the stop must reach the server's other processes, not only the one it started"


def test_readiness_needs_a_200_and_a_failed_start_leaves_nothing_running(tmp_path):
    port = free_port()
    log = tmp_path / "server.log"
    with pytest.raises(RuntimeError, match=r"/missing did not answer within 2 s"):
        serve(http_server(port, tmp_path), port, log, "/missing", timeout=2).stop()  # listening, answering 404
    assert gone(logged_child(log)), "a server that never became ready is stopped, group and all"


def test_a_server_that_exits_is_reported_with_its_log(tmp_path):
    port = free_port()
    command = [sys.executable, "-c", "import sys; print('no model to serve'); sys.exit(3)"]
    with pytest.raises(RuntimeError, match=r"exited \(3\)[\s\S]*no model to serve"):
        serve(command, port, tmp_path / "server.log", "/readyz", timeout=30).stop()
