"""The serving manual's examples (docs/serving.md, the blocks marked ``<!-- example: ... -->``) run as written against
a real ``make serve``, and the request log they leave is where the monitoring page says, read whole by drift-report.

The project folder is the package stage's (tests/serving/conftest.py: ``models/package/``, ``models/model.pt``), with
the repository's Makefile and ``serving/bento_tag.py`` copied in, the project's environment linked as ``.venv`` and
the test corpus as ``data/corpus``. The one change to the examples: port 3000 becomes a free port (``SERVE_PORT``
for ``make serve``). The copied
``pyproject.toml`` is dated before the environment's install stamp, so ``make serve`` does not reinstall it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from exprfusion.service.local_server import answers, free_port

REPOSITORY = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def examples(page: Path) -> dict[str, tuple[str, str]]:
    """The page's marked examples: ``name: (language, code)``."""
    found = re.findall(r"<!-- example: (\S+) -->\n```(\w+)\n(.*?)\n```", page.read_text(), flags=re.DOTALL)
    return {name: (language, code) for name, language, code in found}


@pytest.fixture(scope="module")
def project(served) -> Path:
    """The package stage's folder, made a project ``make serve`` runs in."""
    folder = served.project
    shutil.copy(REPOSITORY / "Makefile", folder / "Makefile")
    (folder / "serving").mkdir(exist_ok=True)
    shutil.copy(REPOSITORY / "serving" / "bento_tag.py", folder / "serving" / "bento_tag.py")
    environment = Path(sys.executable).parents[1]
    stamp = environment / ".installed"
    if not stamp.is_file():
        pytest.skip(f"{environment} was not installed by `make install` (no {stamp.name}): make serve would install it")
    shutil.copy(REPOSITORY / "pyproject.toml", folder / "pyproject.toml")
    os.utime(folder / "pyproject.toml", (stamp.stat().st_mtime - 60, stamp.stat().st_mtime - 60))
    (folder / ".venv").symlink_to(environment, target_is_directory=True)
    (folder / "data").mkdir(exist_ok=True)
    (folder / "data" / "corpus").symlink_to(served.corpus, target_is_directory=True)
    return folder


def run_example(language: str, code: str, project: Path, env: dict[str, str], output: Path) -> subprocess.Popen:
    """Start one example in its own session, its output to ``output`` (a server it leaves running keeps writing
    there; it is stopped with the session's process group)."""
    python = str(project / ".venv" / "bin" / "python")
    command = ["bash", "-e", "-c", code] if language == "bash" else [python, "-c", code]
    with output.open("w") as sink:
        return subprocess.Popen(
            command, cwd=project, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )


def finish(process: subprocess.Popen, output: Path, timeout: float = 240) -> str:
    """The example's output once it has exited, which it must with status 0."""
    process.wait(timeout=timeout)
    printed = output.read_text(errors="replace")
    assert process.returncode == 0, printed[-4000:]
    return printed


def stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.3)
    os.killpg(process.pid, signal.SIGKILL)


def test_the_serving_examples_run_as_written(served, project, tmp_path):
    blocks = examples(REPOSITORY / "docs" / "serving.md")
    assert set(blocks) == {"features", "curl", "python"}
    port, other = free_port(), free_port()
    env = {**served.env, "PATH": f"{project / '.venv' / 'bin'}:{os.environ['PATH']}", "SERVE_PORT": str(port)}
    env.pop("EXPRFUSION_REQUEST_LOG", None)
    made = finish(run_example(*blocks["features"], project, env, tmp_path / "features"), tmp_path / "features")
    assert re.search(r"^v0 96 frames at [\d.]+ fps$", made, re.MULTILINE), made
    assert (project / "video.npz").is_file() and (project / "clip.json").is_file()

    curl = run_example(blocks["curl"][0], blocks["curl"][1].replace("3000", str(port)), project, env, tmp_path / "curl")
    second = None
    try:
        answered = finish(curl, tmp_path / "curl")
        assert answered.count('"labels":') == 2 and '"model_version":"exprfusion-fusion/7"' in answered, answered
        assert '"git_commit":' in answered and "exprfusion_requests_total{" in answered, answered
        python = blocks["python"][1].replace("3000", str(port))
        printed = finish(run_example("python", python, project, env, tmp_path / "python"), tmp_path / "python")
        assert re.search(r"^96 labels; \{'n_frames': 96, .*\} 7$", printed, re.MULTILINE), printed

        # A second server of the same Bento in the same project: its own request log, beside the first's.
        second = subprocess.Popen(
            ["make", "serve", f"SERVE_PORT={other}"], cwd=project, env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 180
        while not answers(f"http://127.0.0.1:{other}/readyz"):
            assert second.poll() is None and time.monotonic() < deadline, "the second make serve did not start"
            time.sleep(0.5)
        audio_only = {"visual": None, "audio": [[0.0] * 6] * 12}
        assert httpx.post(f"http://127.0.0.1:{other}/predict", json=audio_only, timeout=60).status_code == 200
        read_log(project, served, {port: 4, other: 1})
    finally:
        stop(curl)
        if second is not None:
            stop(second)


def read_log(project: Path, served, records: dict[int, int]) -> None:
    """The monitoring page's drift-report command reads every server's file under the project's ``logs/``."""
    command = next(
        line.split("#")[0].split()
        for line in (REPOSITORY / "docs" / "monitoring.md").read_text().splitlines()
        if line.startswith("exprfusion drift-report logs/")
    )
    deadline = time.monotonic() + 20  # the log is written by a background thread
    while True:
        done = subprocess.run(
            [str(project / ".venv" / "bin" / command[0]), *command[1:]], cwd=project, capture_output=True, text=True
        )
        printed = (done.stdout + done.stderr).replace("\n", "")  # the console (standard error) wraps long lines
        if f"({sum(records.values())} records from" in printed or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert done.returncode == 0, done.stdout + done.stderr
    files = sorted(path.name for path in (project / "logs").glob("requests-*.jsonl"))
    assert len(files) == len(records), files
    for port in records:
        assert len([name for name in files if name.endswith(f"-{port}-exprfusion-w1.jsonl")]) == 1, files
    for port, count in records.items():
        assert re.search(rf"read {count} records? from logs/requests-\S+-{port}-exprfusion-w1\.jsonl", printed)
    assert f"({sum(records.values())} records from {len(records)} files)" in printed
    assert not list(Path(served.env["BENTOML_HOME"]).rglob("requests*.jsonl")), "a log inside the Bento store"
