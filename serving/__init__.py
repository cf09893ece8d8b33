"""The exprfusion prediction service (BentoML): ``service.py``, ``streaming.py``, and what a worker needs first.

Importing this package, before ``service.py`` imports the library, does two things in a BentoML worker:

- **A Bento runs the library it holds** (``bundled_library.py``): in a Bento, whatever ``exprfusion`` the
  environment imported before (a checkout's editable install) is dropped for the copy beside ``serving/``, however
  and wherever the server was started. Served from a checkout, nothing changes.
- **Metrics that belong to their server** (:func:`exprfusion.service.server_metrics.use_server_metrics_folder`).
"""

from __future__ import annotations

from pathlib import Path

from serving.bundled_library import run_the_bundled_library

DROPPED_MODULES = run_the_bundled_library(Path(__file__).resolve().parents[1])

from exprfusion.service.server_metrics import use_server_metrics_folder  # noqa: E402  (after the line above)

METRICS_FOLDER = use_server_metrics_folder()
