"""Which code a service runs: the commit its Bento was built from, and the folder its library was imported from.

:func:`exprfusion.tracking.packaging.build_bento` writes ``serving/build.json`` (:func:`write_build_record`) into the
Bento it builds; the service reads it back (:func:`served_commit`) for ``GET /model`` and its start-up log line.
"""

from __future__ import annotations

import json
from pathlib import Path

from exprfusion.core.git_info import git_commit

BUILD_RECORD = "build.json"


def write_build_record(serving_folder: Path, source_root: Path) -> Path:
    """Write ``serving_folder/build.json``: the commit checked out in ``source_root`` when the Bento is built."""
    path = serving_folder / BUILD_RECORD
    path.write_text(json.dumps({"git_commit": git_commit(source_root)}) + "\n")
    return path


def served_commit(serving_folder: Path) -> str:
    """The commit the served code was built from (the Bento's record), or, served from a checkout without one, the
    checkout's ``HEAD`` (``unknown`` outside git)."""
    record = serving_folder / BUILD_RECORD
    if record.is_file():
        return str(json.loads(record.read_text()).get("git_commit"))
    return git_commit(serving_folder)


def library_folder() -> Path:
    """The folder the running ``exprfusion`` library was imported from."""
    return Path(__file__).resolve().parents[1]
