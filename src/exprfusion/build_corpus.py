"""The corpus stage: build the corpus from the configured source (synthetic generator or feature import)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from exprfusion.errors import InputError
from exprfusion.importer import ImportSources
from exprfusion.strict_dicts import reject_unknown_keys

SOURCES = ("synthetic", "import")
# The keys of data.synthetic (generate_corpus's arguments of the same names); data.import's are ImportSources' fields.
SYNTHETIC_KEYS = ("profile", "seed", "missing_face_rate")
IMPORT_FLAGS = ("align", "allow_missing_audio")
REQUIRED_IMPORT_PATHS = ("annotations", "visual", "audio")


def _group(data_params: dict[str, Any], name: str, known: tuple[str, ...]) -> dict[str, Any]:
    """``data.<name>`` with its null values dropped (they mean "the default"); unknown keys are an ``InputError``."""
    values = data_params.get(name) or {}
    reject_unknown_keys(values, known, "params.yaml keys", path=f"data.{name}")
    return {key: value for key, value in values.items() if value is not None}


def build_corpus(data_params: dict[str, Any], progress: Callable[[int, int], None] | None = None) -> Path:
    """Build the corpus described by the ``data`` section of ``params.yaml``; return the corpus root.

    Both ``data.synthetic`` and ``data.import`` are checked, whichever source is used: a misspelt key is an
    :class:`InputError` naming its dotted path. A null value keeps the library's default.

    Args:
        data_params: ``{"source": "synthetic" | "import", "out": ..., "synthetic": {...}, "import": {...}}``.
        progress: optional ``callback(done, total)``.
    """
    synthetic = _group(data_params, "synthetic", SYNTHETIC_KEYS)
    imports = _group(data_params, "import", tuple(field.name for field in fields(ImportSources)))
    source = data_params.get("source")
    if not data_params.get("out"):
        raise InputError("params.yaml data.out: set the folder to write the corpus into")
    out = Path(data_params["out"])
    if source == "synthetic":
        from exprfusion.synthetic import generate_corpus

        if "seed" in synthetic and (isinstance(synthetic["seed"], bool) or not isinstance(synthetic["seed"], int)):
            raise InputError(f"params.yaml data.synthetic.seed must be an integer, got {synthetic['seed']!r}")
        return generate_corpus(out, **synthetic, overwrite=True, progress=progress)
    if source == "import":
        from exprfusion.importer import import_corpus

        missing = [key for key in REQUIRED_IMPORT_PATHS if key not in imports]
        if missing:
            raise InputError(f"params.yaml data.import: set {', '.join(missing)} to import features")
        paths = {key: Path(value) for key, value in imports.items() if key not in IMPORT_FLAGS}
        flags = {key: value for key, value in imports.items() if key in IMPORT_FLAGS}
        import_corpus(ImportSources(**paths, **flags), out, overwrite=True, progress=progress)
        return out
    raise InputError(f"params.yaml data.source is {source!r}; expected one of {SOURCES}")
