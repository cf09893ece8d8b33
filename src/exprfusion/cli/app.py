"""The Typer application and the clean input-error reporting of its commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer

from exprfusion.core.errors import InputError
from exprfusion.core.stage_runner import INPUT_ERROR_STATUS, report_input_error

app = typer.Typer(
    name="exprfusion",
    help="Robust audio-visual facial-expression recognition on Aff-Wild2.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def clean_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Report the library's input errors as one red line and exit status 2; any other exception keeps its traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except InputError as error:
            report_input_error(error)
            raise typer.Exit(code=INPUT_ERROR_STATUS) from None

    return wrapper


def main() -> None:
    """Entry point for ``python -m exprfusion``."""
    app()
