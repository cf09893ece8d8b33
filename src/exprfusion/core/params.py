"""Read one stage's section of ``params.yaml`` (the single configuration source of the pipeline).

Every read checks the file's sections and the loaded section's keys: a misspelt key is an error naming its full
dotted path (``evaluate.bogus``), never a setting silently ignored. A group whose keys are a settings class's fields
(``data.import``, ``tune.model``, ``train.overrides``, ...) is checked by the code that builds that class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from exprfusion.core.errors import InputError, MissingInputError
from exprfusion.core.strict_dicts import reject_unknown_keys

DEFAULT_PARAMS = Path("params.yaml")
# The keys the stage scripts read from each section; None: the section is one settings class, which checks them.
SECTION_KEYS: dict[str, tuple[str, ...] | None] = {
    "data": ("source", "out", "inputs", "synthetic", "import", "media"),
    "validate": ("required_splits", "verify_hashes", "min_face_rate", "max_face_rate", "min_class_frames"),
    "tune": ("experiment", "grid", "search", "model", "train"),
    "train": ("experiment", "registered_name", "overrides"),
    "evaluate": None,
    "package": ("smoke_frames",),
}


def read_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Return the whole parameters file; a missing file, invalid YAML or an unknown section is an ``InputError``."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path}: parameters file not found (run from the repository root)")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise InputError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    reject_unknown_keys(params, SECTION_KEYS, f"{path} sections")
    return params


def load_section(section: str, path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Return ``params.yaml``'s ``section`` as a dict; a missing file or section, or an unknown key, is an error."""
    params = read_params(path)
    if section not in params:
        raise InputError(f"{path}: no '{section}' section")
    values = params[section]
    known = SECTION_KEYS[section]
    if known is not None:
        reject_unknown_keys(values, known, f"{path} keys", path=section)
    elif not isinstance(values, dict):
        raise InputError(f"{path}: section {section} must be a mapping of keys to values, got {values!r}")
    return values
