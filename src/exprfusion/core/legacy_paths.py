"""Old module paths that users hold, mapped to the modules that replaced them.

A registered MLflow model pickles its pyfunc class by module path (``exprfusion.pyfunc_model.ExpressionModel``), and a
deployment may name a face detector by import path in ``EXPRFUSION_FACE_DETECTOR``. Both were written before the
library was split into layers; a finder on :data:`sys.meta_path` makes the old names import the new modules (the same
module object, so classes and functions are identical).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

LEGACY_MODULES: dict[str, str] = {
    "exprfusion.pyfunc_model": "exprfusion.tracking.pyfunc_model",
    "exprfusion.faces": "exprfusion.sources.extract.faces",
    "exprfusion.video.faces": "exprfusion.sources.extract.faces",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the target module is already imported."""


class _LegacyPathFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        new = LEGACY_MODULES.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))


def install_legacy_paths() -> None:
    """Put the legacy-path finder on :data:`sys.meta_path` once."""
    if not any(isinstance(finder, _LegacyPathFinder) for finder in sys.meta_path):
        sys.meta_path.append(_LegacyPathFinder())
