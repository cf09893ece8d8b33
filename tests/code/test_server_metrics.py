"""A metrics folder per server, and dead workers' per-process series removed (exprfusion.service.server_metrics),
on real processes and real prometheus_client files; the servers themselves: tests/serving/test_workers_and_metrics.py.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import psutil

from exprfusion.service.server_metrics import (
    BENTOML_FOLDER_ENV,
    dead_worker_pids,
    remove_dead_workers,
    remove_stale_server_folders,
    server_folder,
    use_server_metrics_folder,
)

REPOSITORY = Path(__file__).resolve().parents[2]


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_worker_gets_its_servers_folder_beside_bentomls(tmp_path):
    bentoml_folder = tmp_path / "home" / "prometheus_multiproc_dir"
    environ = {BENTOML_FOLDER_ENV: str(bentoml_folder)}
    folder = use_server_metrics_folder(environ)
    assert folder == server_folder(tmp_path / "home" / "exprfusion_metrics", psutil.Process().parent())
    assert environ[BENTOML_FOLDER_ENV] == str(folder) and folder.is_dir()
    assert use_server_metrics_folder(environ) == folder  # a second import in the same worker changes nothing
    assert use_server_metrics_folder({}) is None  # not a BentoML worker: nothing to move


def test_folders_of_servers_that_are_gone_are_removed(tmp_path):
    live = server_folder(tmp_path, psutil.Process())
    gone = tmp_path / f"server-{_dead_pid()}-1"
    reused = tmp_path / f"server-{psutil.Process().pid}-1"  # this pid, another start time: another server
    for folder in (live, gone, reused):
        folder.mkdir()
    assert sorted(remove_stale_server_folders(tmp_path)) == sorted([gone, reused])
    assert [path.name for path in tmp_path.iterdir()] == [live.name]


def test_a_dead_workers_gauges_go_and_its_death_is_logged_once(tmp_path, caplog):
    dead, alive = _dead_pid(), psutil.Process().pid
    kept = [f"counter_{dead}.db", f"histogram_{dead}.db", f"gauge_livesum_{alive}.db", f"gauge_liveall_{alive}.db"]
    removed = [f"gauge_liveall_{dead}.db", f"gauge_livemax_{dead}.db", f"gauge_all_{dead}.db"]
    for name in kept + removed:
        (tmp_path / name).write_bytes(b"")
    assert dead_worker_pids(tmp_path) == {dead}
    with caplog.at_level(logging.WARNING, logger="exprfusion.service"):
        assert remove_dead_workers(tmp_path) == [dead]
        assert remove_dead_workers(tmp_path) == []  # another worker sweeping after it: nothing left, nothing logged
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(kept)
    assert [record.getMessage().split(" of ")[0] for record in caplog.records] == [f"worker process {dead}"]


def test_the_bundled_library_replaces_one_imported_from_elsewhere(tmp_path):
    """serving/bundled_library.py on a Bento-like folder (exprfusion/ beside serving/): an exprfusion imported before
    from another folder is dropped and the bundled one imported. Control: without a bundle, the first import stays."""
    for name, marker in (("bundle", "bundled"), ("elsewhere", "elsewhere")):
        (tmp_path / name / "exprfusion" / "core").mkdir(parents=True)
        (tmp_path / name / "exprfusion" / "__init__.py").write_text(f"WHERE = {marker!r}\n")
        (tmp_path / name / "exprfusion" / "core" / "__init__.py").write_text("")
    probe = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import exprfusion.core; "
        "sys.path.insert(0, sys.argv[3]); from bundled_library import run_the_bundled_library; "
        "dropped = run_the_bundled_library(Path(sys.argv[2])); import exprfusion; print(exprfusion.WHERE, dropped)"
    )

    def run(bundle: Path) -> str:
        arguments = [str(tmp_path / "elsewhere"), str(bundle), str(REPOSITORY / "serving")]
        done = subprocess.run([sys.executable, "-c", probe, *arguments], capture_output=True, text=True, check=True)
        return done.stdout.strip()

    assert run(tmp_path / "bundle") == "bundled ['exprfusion', 'exprfusion.core']"
    assert run(tmp_path / "no-bundle") == "elsewhere []"
