"""The package stage run the served tests build their Bento with.

Starting, waiting for and stopping the servers themselves (``bentoml serve``, ``mlflow server``, Prometheus) is
:mod:`exprfusion.service.local_server`, shared with the benchmarks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from factories import git_repository

REPOSITORY = Path(__file__).resolve().parents[1]


def package_bento(
    workdir: Path, model_path: Path, env: Mapping[str, str], registration: Mapping[str, Any] | None = None
) -> tuple[str, str]:
    """Run the real package stage script on ``model_path`` in ``workdir`` (made a git repository); return the
    Bento tag it built (in ``env``'s ``BENTOML_HOME``) and the commit."""
    commit = git_repository(workdir)
    (workdir / "models").mkdir(parents=True)
    (workdir / "reports").mkdir()
    (workdir / "models" / "model.pt").write_bytes(model_path.read_bytes())
    (workdir / "reports" / "evaluation.json").write_text(json.dumps({"split": "validation", "macro_f1": 0.25}))
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
