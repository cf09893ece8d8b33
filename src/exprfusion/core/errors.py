"""The project's one error type for bad input: a file, a row, a parameter or a request the user can fix.

The command line and the DVC stages print an :class:`InputError` as one line and exit with status 2; every other
exception is a bug and keeps its traceback. It subclasses ``ValueError`` so callers that catch ``ValueError`` still
catch it.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input that the user can fix; the message names the file, row, key or value at fault."""


class MissingInputError(InputError, FileNotFoundError):
    """A file or folder the user named does not exist (also a ``FileNotFoundError``)."""
