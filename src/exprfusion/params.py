"""Read one stage's section of ``params.yaml`` (the single configuration source of the pipeline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEFAULT_PARAMS = Path("params.yaml")


def load_section(section: str, path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Return ``params.yaml``'s ``section`` as a dict; a missing file or section is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: parameters file not found (run from the repository root)")
    params = yaml.safe_load(path.read_text()) or {}
    if section not in params:
        raise KeyError(f"{path}: no '{section}' section")
    return params[section]
