"""Metrics that belong to their server: a multiprocess folder per running server, and dead workers' series removed.

BentoML's workers write their Prometheus series to files in one folder, ``$BENTOML_HOME/prometheus_multiproc_dir``,
and every ``bentoml serve`` empties that folder when it starts: a second server on the host (same ``BENTOML_HOME``)
would wipe the first one's counters, whose workers would then write to deleted files and never be counted again.
:func:`use_server_metrics_folder`, run in each worker before any metric exists (``serving/__init__.py``), points
the worker at a folder of its own server instead: ``exprfusion_metrics/server-<pid>-<start time>`` beside BentoML's,
the server being the process that started the workers. Every worker of one server (the streaming service's
included) shares it; no other server reads or clears it. Folders of servers that are gone are removed.

A worker killed outright (out of memory, ``SIGKILL``) never marks itself dead, so its per-process gauges (the drift
window's, ``liveall``, and BentoML's ``last_request_timestamp_seconds``, mode ``all``) would stay at ``/metrics``.
Each worker checks the folder at start and every :data:`SWEEP_SECONDS`: a worker process that no longer runs has
its per-process gauge files removed (the live ones, as ``prometheus_client.multiprocess.mark_process_dead`` does,
and the ``all`` ones) and its death logged once, as a warning. Its counters and histograms stay: they count what it
did.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
from pathlib import Path

import psutil

BENTOML_FOLDER_ENV = "PROMETHEUS_MULTIPROC_DIR"  # what BentoML gives each worker
SERVERS_FOLDER = "exprfusion_metrics"
SWEEP_SECONDS = 5.0
PER_PROCESS_FILE = re.compile(r"^gauge_(?:live\w*?|all)_(\d+)\.db$")
SERVER_FOLDER = re.compile(r"^server-(\d+)-(\d+)$")

logger = logging.getLogger("exprfusion.service")


def _start_time(process: psutil.Process) -> int:
    return int(process.create_time() * 1000)


def server_folder(base: Path, server: psutil.Process) -> Path:
    """The metrics folder of the server ``server`` (its pid and start time: a reused pid is another server)."""
    return base / f"server-{server.pid}-{_start_time(server)}"


def _running(pid: int, start_ms: int | None = None) -> bool:
    """Whether process ``pid`` runs (and, given ``start_ms``, is the one started then), zombies counted as gone."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return start_ms is None or _start_time(process) == start_ms
    except psutil.Error:
        return False


def remove_stale_server_folders(base: Path) -> list[Path]:
    """Remove the folders under ``base`` of servers that no longer run; return them."""
    removed = []
    for folder in base.glob("server-*"):
        match = SERVER_FOLDER.match(folder.name)
        if match and not _running(int(match[1]), int(match[2])):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def use_server_metrics_folder(environ: dict[str, str] | None = None) -> Path | None:
    """In a BentoML worker, move its multiprocess metrics to its server's own folder and start the dead-worker
    sweep; return the folder. Outside a worker (no ``PROMETHEUS_MULTIPROC_DIR``: a build, a test importing the
    service, the server's own process), nothing changes and None is returned."""
    environ = os.environ if environ is None else environ
    bentoml_folder = environ.get(BENTOML_FOLDER_ENV)
    if not bentoml_folder:
        return None
    base = Path(bentoml_folder)
    if base.parent.name == SERVERS_FOLDER:  # already moved (this process imported the service before)
        return base
    servers = base.parent / SERVERS_FOLDER
    folder = server_folder(servers, psutil.Process().parent() or psutil.Process())
    folder.mkdir(parents=True, exist_ok=True)
    environ[BENTOML_FOLDER_ENV] = str(folder)
    remove_stale_server_folders(servers)
    if environ is os.environ:
        DeadWorkerSweep(folder).start()
    return folder


def dead_worker_pids(folder: Path) -> set[int]:
    """The processes with per-process gauge files in ``folder`` that no longer run."""
    pids = {int(match[1]) for path in folder.glob("gauge_*.db") if (match := PER_PROCESS_FILE.match(path.name))}
    return {pid for pid in pids if not _running(pid)}


def remove_dead_workers(folder: Path) -> list[int]:
    """Remove the per-process gauge files of every dead worker in ``folder`` and log each death; return the pids
    whose death this call logged. Several workers may sweep at once: the one that removes a dead worker's first file
    logs it."""
    logged = []
    for pid in sorted(dead_worker_pids(folder)):
        files = [path for path in folder.glob(f"gauge_*_{pid}.db") if PER_PROCESS_FILE.match(path.name)]
        for number, path in enumerate(sorted(files)):
            try:
                path.unlink()
            except FileNotFoundError:
                continue  # another worker of the server removed it
            if number == 0:
                logged.append(pid)
                logger.warning(
                    "worker process %d of this server is gone (killed or crashed): its per-process series are "
                    "removed from /metrics, its counters stay",
                    pid,
                )
    return logged


class DeadWorkerSweep(threading.Thread):
    """A daemon thread that runs :func:`remove_dead_workers` on ``folder`` at start and every ``seconds``."""

    def __init__(self, folder: Path, seconds: float = SWEEP_SECONDS) -> None:
        super().__init__(name="exprfusion-dead-worker-sweep", daemon=True)
        self.folder, self.seconds = folder, seconds
        self.stopped = threading.Event()

    def run(self) -> None:
        """Sweep until the process ends (or :attr:`stopped` is set)."""
        while True:
            try:
                remove_dead_workers(self.folder)
            except OSError as error:  # a folder being removed under us: try again next time
                logger.debug("dead-worker sweep of %s failed: %s", self.folder, error)
            if self.stopped.wait(self.seconds):
                return
