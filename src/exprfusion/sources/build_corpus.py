"""The corpus stage: build the corpus from the configured source (synthetic generator, feature import, or media).

With ``import`` or ``media``, every input path must lie inside ``data.inputs``: dvc.yaml lists that folder as a dep
of the corpus stage, so DVC sees any input file change (``dvc status`` reports the stage changed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from exprfusion.core.errors import InputError
from exprfusion.core.strict_dicts import reject_unknown_keys
from exprfusion.sources.importer import ImportSources

SOURCES = ("synthetic", "import", "media")
# The keys of data.synthetic (generate_corpus's arguments of the same names); data.import's are ImportSources' fields.
SYNTHETIC_KEYS = ("profile", "seed", "missing_face_rate")
IMPORT_FLAGS = ("align", "allow_missing_audio")
REQUIRED_IMPORT_PATHS = ("annotations", "visual", "audio")


def _group(data_params: dict[str, Any], name: str, known: tuple[str, ...]) -> dict[str, Any]:
    """``data.<name>`` with its null values dropped (they mean "the default"); unknown keys are an ``InputError``."""
    values = data_params.get(name) or {}
    reject_unknown_keys(values, known, "params.yaml keys", path=f"data.{name}")
    return {key: value for key, value in values.items() if value is not None}


def check_inside_inputs(inputs: Any, paths: Iterable[tuple[str, Any]], outputs: Iterable[tuple[str, Any]] = ()) -> None:
    """Raise :class:`InputError` unless every ``(dotted key, path)`` of ``paths`` lies inside ``inputs``, and none of
    ``outputs`` does.

    DVC hashes ``data.inputs`` as a dep of the corpus stage: an input outside it would change unseen, and an output
    inside it would change the dep on every run.
    """
    if not inputs:
        raise InputError("params.yaml data.inputs: set the folder that holds every input of the corpus")
    root = Path(inputs).resolve()
    for key, value in paths:
        path = Path(value).resolve()
        if path != root and root not in path.parents:
            raise InputError(
                f"params.yaml {key}: {value} is not inside data.inputs ({inputs}), so DVC would not see it change; "
                "set data.inputs to a folder that holds all the inputs"
            )
    for key, value in outputs:
        path = Path(value).resolve()
        if path == root or root in path.parents:
            raise InputError(f"params.yaml {key}: {value} is inside data.inputs ({inputs}); write it elsewhere")


def build_corpus(
    data_params: dict[str, Any],
    progress: Callable[[int, int], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> Path:
    """Build the corpus described by the ``data`` section of ``params.yaml``; return the corpus root.

    ``data.synthetic``, ``data.import`` and ``data.media`` are checked, whichever source is used: a misspelt key is
    an :class:`InputError` naming its dotted path. A null value keeps the library's default.

    Args:
        data_params: ``{"source": "synthetic" | "import" | "media", "out": ..., "inputs": ..., "synthetic": {...},
            "import": {...}, "media": {...}}``.
        progress: optional ``callback(done, total)``.
        notify: optional ``callback(line)`` for a summary of what extraction did (``media`` only).
    """
    from exprfusion.sources.extract.settings import media_from_params, model_paths

    synthetic = _group(data_params, "synthetic", SYNTHETIC_KEYS)
    imports = _group(data_params, "import", tuple(field.name for field in fields(ImportSources)))
    source = data_params.get("source")
    media_sources, media_settings, media_options = media_from_params(
        data_params.get("media") or {}, require_sources=source == "media"
    )
    if not data_params.get("out"):
        raise InputError("params.yaml data.out: set the folder to write the corpus into")
    out = Path(data_params["out"])
    if source == "synthetic":
        from exprfusion.sources.synthetic import generate_corpus

        if "seed" in synthetic and (isinstance(synthetic["seed"], bool) or not isinstance(synthetic["seed"], int)):
            raise InputError(f"params.yaml data.synthetic.seed must be an integer, got {synthetic['seed']!r}")
        return generate_corpus(out, **synthetic, overwrite=True, progress=progress)
    if source == "import":
        from exprfusion.sources.importer import import_corpus

        missing = [key for key in REQUIRED_IMPORT_PATHS if key not in imports]
        if missing:
            raise InputError(f"params.yaml data.import: set {', '.join(missing)} to import features")
        paths = {key: Path(value) for key, value in imports.items() if key not in IMPORT_FLAGS}
        flags = {key: value for key, value in imports.items() if key in IMPORT_FLAGS}
        given = [(f"data.import.{key}", value) for key, value in paths.items()]
        check_inside_inputs(data_params.get("inputs"), given, [("data.out", out)])
        import_corpus(ImportSources(**paths, **flags), out, overwrite=True, progress=progress)
        return out
    if source == "media":
        from exprfusion.sources.extract.build import default_cache, extract_corpus

        given = [(f"data.media.{key}", value) for key, value in vars(media_sources).items() if value is not None]
        outputs = [("data.out", out), ("data.media.cache", media_options.cache or default_cache(out))]
        check_inside_inputs(data_params.get("inputs"), [*given, *model_paths(media_settings)], outputs)
        options = replace(media_options, overwrite=True)
        report = extract_corpus(media_sources, media_settings, out, options, progress=progress)
        if notify:
            notify(f"extracted {len(report.extracted)} videos, reused {len(report.reused)} from the cache")
            for failure in report.failures:
                notify(f"left out: {failure}")
        return out
    raise InputError(f"params.yaml data.source is {source!r}; expected one of {SOURCES}")
