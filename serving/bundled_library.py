"""A Bento runs the library it holds, never one installed elsewhere (used by ``serving/__init__.py``; imports nothing
of the library itself).

In a Bento, ``exprfusion/`` lies beside ``serving/`` (``src/`` of the Bento). ``bentoml serve exprfusion:<version>``
first tries the tag as a module path (module ``exprfusion``, attribute ``<version>``), which imports whatever
``exprfusion`` the environment has (a checkout's editable install) before BentoML falls back to its store; the
service would then run the checkout's library. :func:`run_the_bundled_library` drops every ``exprfusion`` module
imported from outside the Bento, with its import hooks, and puts the Bento's folder first on ``sys.path``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

LIBRARY = "exprfusion"


def _is_library(name: str) -> bool:
    return name == LIBRARY or name.startswith(f"{LIBRARY}.")


def run_the_bundled_library(bundle: Path) -> list[str]:
    """Make ``import exprfusion`` read ``bundle/exprfusion`` when it exists; return the modules dropped (imported
    from elsewhere). Without a bundled copy (served from a checkout) nothing changes."""
    if not (bundle / LIBRARY / "__init__.py").is_file():
        return []
    dropped = []
    for name in [name for name in sys.modules if _is_library(name)]:
        origin = getattr(sys.modules[name], "__file__", None)
        if origin is None or not Path(origin).resolve().is_relative_to(bundle):
            del sys.modules[name]
            dropped.append(name)
    # The dropped copy's import hooks (its legacy-path finder) go with it; the Bento's copy installs its own.
    sys.meta_path[:] = [finder for finder in sys.meta_path if type(finder).__module__ not in dropped]
    while str(bundle) in sys.path:
        sys.path.remove(str(bundle))
    sys.path.insert(0, str(bundle))
    importlib.invalidate_caches()
    return dropped
