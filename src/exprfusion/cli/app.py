"""The Typer application and the clean error reporting shared by the commands and the DVC stage scripts."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer

from exprfusion.progress import console

app = typer.Typer(
    name="exprfusion",
    help="Robust audio-visual facial-expression recognition on Aff-Wild2.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _user_errors() -> tuple[type[BaseException], ...]:
    from exprfusion.annotations import AnnotationError
    from exprfusion.corpus import CorpusError

    return (AnnotationError, CorpusError, ValueError, FileNotFoundError, KeyError)


def clean_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's input errors into one red line and exit status 2, instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except _user_errors() as error:
            message = error.args[0] if isinstance(error, KeyError) and error.args else error
            console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper


def run_stage(main: Callable[[], None]) -> None:
    """Run a DVC stage's ``main`` with the same clean error reporting as the commands (exit status 2)."""
    try:
        clean_errors(main)()
    except typer.Exit as done:
        raise SystemExit(done.exit_code) from None


def main() -> None:
    """Entry point for ``python -m exprfusion``."""
    app()
