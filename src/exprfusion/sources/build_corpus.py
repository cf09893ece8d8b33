"""The corpus stage: build the corpus from the configured source (synthetic generator, feature import, or media).

With ``import`` or ``media``, every input path must lie inside ``data.inputs``: dvc.yaml lists that folder as a dep
of the corpus stage, so DVC sees any input file change (``dvc status`` reports the stage changed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from exprfusion.core.errors import InputError
from exprfusion.core.settings import validate
from exprfusion.sources.importer import ImportSources
from exprfusion.sources.params import DataParams

REQUIRED_IMPORT_PATHS = ("annotations", "visual", "audio")
IMPORT_PATHS = (*REQUIRED_IMPORT_PATHS, "face_mask", "cropped_aligned", "fps_csv")


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
    data_params: Mapping[str, Any] | DataParams,
    progress: Callable[[int, int], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> Path:
    """Build the corpus described by the ``data`` section of ``params.yaml``; return the corpus root.

    ``data.synthetic``, ``data.import`` and ``data.media`` are checked (:class:`DataParams`), whichever source is
    used: a misspelt key or a bad value is an :class:`InputError` naming its dotted path.

    Args:
        data_params: the ``data`` section (a mapping, or :class:`DataParams`).
        progress: optional ``callback(done, total)``.
        notify: optional ``callback(line)`` for a summary of what extraction did (``media`` only).
    """
    from exprfusion.sources.extract.settings import media_from_params, model_paths

    params = data_params
    if not isinstance(params, DataParams):
        params = validate(DataParams, dict(data_params), where="params.yaml", path="data")
    media_sources, media_settings, media_options = media_from_params(
        params.media, require_sources=params.source == "media"
    )
    if not params.out:
        raise InputError("params.yaml data.out: set the folder to write the corpus into")
    out = Path(params.out)
    if params.source == "synthetic":
        from exprfusion.sources.synthetic import generate_corpus

        synthetic = params.synthetic
        return generate_corpus(
            out,
            synthetic.profile,
            synthetic.seed,
            missing_face_rate=synthetic.missing_face_rate,
            overwrite=True,
            progress=progress,
        )
    if params.source == "import":
        from exprfusion.sources.importer import import_corpus

        imports = params.imports
        missing = [key for key in REQUIRED_IMPORT_PATHS if getattr(imports, key) is None]
        if missing:
            raise InputError(f"params.yaml data.import: set {', '.join(missing)} to import features")
        given = [(f"data.import.{key}", getattr(imports, key)) for key in IMPORT_PATHS if getattr(imports, key)]
        check_inside_inputs(params.inputs, given, [("data.out", out)])
        sources = ImportSources(**{name: getattr(imports, name) for name in ImportSources.__dataclass_fields__})
        import_corpus(sources, out, overwrite=True, progress=progress)
        return out
    from exprfusion.sources.extract.build import default_cache, extract_corpus

    given = [(f"data.media.{key}", value) for key, value in vars(media_sources).items() if value is not None]
    outputs = [("data.out", out), ("data.media.cache", media_options.cache or default_cache(out))]
    check_inside_inputs(params.inputs, [*given, *model_paths(media_settings)], outputs)
    options = replace(media_options, overwrite=True)
    report = extract_corpus(media_sources, media_settings, out, options, progress=progress)
    if notify:
        notify(f"extracted {len(report.extracted)} videos, reused {len(report.reused)} from the cache")
        for failure in report.failures:
            notify(f"left out: {failure}")
    return out
