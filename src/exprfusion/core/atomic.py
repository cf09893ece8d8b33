"""Atomic file writes: write beside the destination, then rename into place only if everything succeeded."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # same folder: os.replace stays atomic
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing (``"w"`` text with ``\\n`` newlines, or ``"wb"``)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes only, mode 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as temporary:
        if mode == "w":
            with temporary.open("x", encoding="utf-8", newline="\n") as handle:
                yield handle
        else:
            with temporary.open("xb") as handle:
                yield handle


def write_json(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` as indented JSON atomically (readers never see a partial file)."""
    path = Path(path)
    with atomic_open(path) as handle:
        handle.write(json.dumps(payload, indent=2) + "\n")
    return path
