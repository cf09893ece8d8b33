"""How the DVC stage scripts and the commands report bad input: one red line and exit status 2.

Only an :class:`~exprfusion.core.errors.InputError` is reported this way; any other exception is a bug and propagates
with its traceback. Stage scripts import this module rather than :mod:`exprfusion.cli`, which loads every command.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.markup import escape

from exprfusion.core.errors import InputError
from exprfusion.core.progress import console

INPUT_ERROR_STATUS = 2


def report_input_error(error: InputError) -> None:
    """Print ``error: <message>`` on one line of standard error (line breaks in the message become spaces)."""
    message = " ".join(str(error).splitlines())
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def run_stage(main: Callable[[], None]) -> None:
    """Run a DVC stage's ``main``; an input error is one line and exit status 2, anything else keeps its traceback."""
    try:
        main()
    except InputError as error:
        report_input_error(error)
        raise SystemExit(INPUT_ERROR_STATUS) from None
