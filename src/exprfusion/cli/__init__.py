"""The ``exprfusion`` command line: thin commands over the library, one module per topic."""

from exprfusion.cli import data_commands, model_commands, monitor_commands, video_commands  # noqa: F401  (registers the commands on ``app``)
from exprfusion.cli.app import app, clean_errors, main

__all__ = ["app", "clean_errors", "main"]
