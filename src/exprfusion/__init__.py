"""exprfusion: robust audio-visual facial-expression recognition on Aff-Wild2.

The library is layered (``core`` at the bottom, ``cli`` at the top; the import-linter contract in ``pyproject.toml``
states the order). Module paths that users hold from before the layering, such as the pyfunc module that registered
MLflow models name or a face detector path in ``EXPRFUSION_FACE_DETECTOR``, still import:
:mod:`exprfusion.core.legacy_paths` maps them to their new homes.
"""

from exprfusion.core.legacy_paths import install_legacy_paths

__version__ = "0.1.0"

install_legacy_paths()
