"""A Bento runs the library it was built with, however and wherever it is started, never a checkout's install.

A copy of the project's ``serving/`` and ``src/exprfusion`` is made a git checkout, installed the way an editable
install puts a checkout first (``PYTHONPATH``), and its Bento built (a small random model, ``random_bento.py``).
Then the checkout's library is changed so that any use of it fails loudly, and the Bento is served as ``make serve``
starts it (from the checkout) and from another folder: both answer as the original library does, log the Bento's
own library folder, and report the checkout's commit at ``/model``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from factories import git_repository
from random_bento import REPOSITORY, bento_env, build_random_bento, npz_body, video

from exprfusion.inference.predict import predict_video
from exprfusion.model.artifact import load_model
from exprfusion.service.local_server import bentoml_serve

pytestmark = pytest.mark.slow

CHANGED = "the checkout's changed library ran"
# Appended to the checkout's voting module: every prediction labels its frames with it.
BREAK_VOTING = f"\n\ndef median_filter_labels(*args, **kwargs):\n    raise RuntimeError({CHANGED!r})\n"


def _checkout(folder: Path) -> str:
    """A git checkout of the project's serving code and library at ``folder``; its commit."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build.json")
    shutil.copytree(REPOSITORY / "serving", folder / "serving", ignore=ignore)
    shutil.copytree(REPOSITORY / "src" / "exprfusion", folder / "src" / "exprfusion", ignore=ignore)
    git_repository(folder)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "add", "serving", "src"], cwd=folder, check=True)
    subprocess.run([*git, "commit", "-qm", "the service"], cwd=folder, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True).stdout.strip()


def test_a_bento_serves_its_own_library_started_from_the_checkout_or_elsewhere(tmp_path):
    checkout = tmp_path / "checkout"
    commit = _checkout(checkout)
    home = tmp_path / "bentoml"
    env = bento_env(home, PYTHONPATH=str(checkout / "src"))  # the checkout's library first, as its install puts it
    tag = build_random_bento(tmp_path / "build", env, source=checkout)
    bento_library = home / "bentos" / tag.replace(":", "/") / "src" / "exprfusion"
    frames = video(120)
    model, inference, _ = load_model(tmp_path / "build" / "model.pt")
    expected = predict_video(model, inference, **frames)[0].tolist()

    voting = checkout / "src" / "exprfusion" / "inference" / "voting.py"
    voting.write_text(voting.read_text() + BREAK_VOTING)
    # Control: the way BentoML's worker loads a tag imports the checkout's library first (the module 'exprfusion').
    probe = (
        "import sys; from bentoml._internal.service.loader import import_service\n"
        "try: import_service(sys.argv[1])\nexcept Exception: pass\n"
        "print(sys.modules['exprfusion'].__file__)"
    )
    done = subprocess.run([sys.executable, "-c", probe, tag], cwd=checkout, env=env, capture_output=True, text=True)
    assert done.stdout.strip() == str(checkout / "src" / "exprfusion" / "__init__.py"), done.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for started_in in (checkout, elsewhere):
        with bentoml_serve([tag], tmp_path / f"{started_in.name}.log", env, cwd=started_in) as server:
            answer = httpx.post(
                f"{server.url}/predict_npz",
                content=npz_body(**frames),
                headers={"content-type": "application/octet-stream"},
                timeout=60,
            )
            described = httpx.get(f"{server.url}/model", timeout=30).json()
            log = server.log.read_text(errors="replace")
        assert answer.status_code == 200, log[-4000:]
        assert answer.json()["labels"] == expected
        assert described["code_commit"] == commit
        assert f"exprfusion {commit} from {bento_library}" in log
        assert CHANGED not in log and str(checkout / "src") not in log
    assert np.array_equal(np.asarray(expected), predict_video(model, inference, **frames)[0])
