"""The corpus stage: build the corpus from the configured source (synthetic generator or feature import)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

SOURCES = ("synthetic", "import")


def build_corpus(data_params: dict[str, Any], progress: Callable[[int, int], None] | None = None) -> Path:
    """Build the corpus described by the ``data`` section of ``params.yaml``; return the corpus root.

    Args:
        data_params: ``{"source": "synthetic" | "import", "out": ..., "synthetic": {...}, "import": {...}}``.
        progress: optional ``callback(done, total)``.
    """
    source = data_params.get("source")
    out = Path(data_params["out"])
    if source == "synthetic":
        from exprfusion.synthetic import generate_corpus

        options = data_params.get("synthetic") or {}
        return generate_corpus(
            out,
            profile=options.get("profile", "default"),
            seed=int(options.get("seed", 0)),
            missing_face_rate=options.get("missing_face_rate"),
            overwrite=True,
            progress=progress,
        )
    if source == "import":
        from exprfusion.importer import ImportSources, import_corpus

        options = data_params.get("import") or {}
        missing = [key for key in ("annotations", "visual", "audio") if not options.get(key)]
        if missing:
            raise ValueError(f"params.yaml data.import: set {', '.join(missing)} to import features")
        flags = {"align", "allow_missing_audio"}
        paths = {key: Path(value) if value else None for key, value in options.items() if key not in flags}
        sources = ImportSources(
            **paths,
            align=options.get("align", "nearest"),
            allow_missing_audio=bool(options.get("allow_missing_audio", False)),
        )
        import_corpus(sources, out, overwrite=True, progress=progress)
        return out
    raise ValueError(f"params.yaml data.source is {source!r}; expected one of {SOURCES}")
