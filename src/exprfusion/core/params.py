"""Read ``params.yaml``, the single configuration source of the pipeline, one stage's section at a time.

The file has one section per stage (``SECTIONS``). A stage reads its own section through that section's settings
class (:func:`load_section`, e.g. ``load_section("validate", ValidationSettings)``), which owns the defaults and the
checks: a misspelt key or a bad value, at any depth, is one :class:`~exprfusion.core.errors.InputError` line naming
the file and the dotted path (``params.yaml: tune.model.d_model: must be >= 1, got 0``). The whole file's schema
is :class:`exprfusion.search.params.PipelineParams`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml

from exprfusion.core.errors import InputError, MissingInputError
from exprfusion.core.settings import validate

T = TypeVar("T")

DEFAULT_PARAMS = Path("params.yaml")
SECTIONS: tuple[str, ...] = ("data", "validate", "tune", "train", "evaluate", "package")
DEFAULT_CORPUS = "data/corpus"  # data.out: the corpus folder every stage after `corpus` reads


def read_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Return the whole parameters file; a missing file, invalid YAML or an unknown section is an ``InputError``."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path}: parameters file not found (run from the repository root)")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise InputError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    if not isinstance(params, dict):
        raise InputError(f"{path}: must be a mapping of sections, got {type(params).__name__}")
    unknown = sorted(str(name) for name in params if name not in SECTIONS)
    if unknown:
        raise InputError(f"{path}: {', '.join(unknown)}: unknown section; known: {list(SECTIONS)}")
    return params


def load_section(section: str, schema: type[T], path: str | Path = DEFAULT_PARAMS) -> T:
    """``params.yaml``'s ``section`` validated into ``schema``; a missing file or section, an unknown key or a bad
    value is an ``InputError`` naming the file and the dotted path."""
    params = read_params(path)
    if section not in params:
        raise InputError(f"{path}: no '{section}' section")
    return validate(schema, params[section] if params[section] is not None else {}, where=str(path), path=section)


def corpus_folder(path: str | Path = DEFAULT_PARAMS) -> str:
    """``data.out``, the corpus folder, for the stages after ``corpus`` (its own stage checks the rest of ``data``)."""
    data = read_params(path).get("data") or {}
    out = data.get("out", DEFAULT_CORPUS) if isinstance(data, dict) else None
    if not isinstance(out, str) or not out:
        raise InputError(f"{path}: data.out: must be the corpus folder, got {out!r}")
    return out
