"""The git commit of the code that runs, for lineage tags, MLflow's source tags and the model card."""

from __future__ import annotations

import subprocess
from pathlib import Path

UNKNOWN = "unknown"


def git_commit(cwd: str | Path | None = None) -> str:
    """The commit checked out in ``cwd`` (``git rev-parse HEAD``), or ``"unknown"`` outside a git repository."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return UNKNOWN
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else UNKNOWN
