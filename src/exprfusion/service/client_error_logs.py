"""Log lines of refused requests: one line each, no traceback, nothing of the request's content.

BentoML logs every exception its API wrapper turns into an answer at ERROR with the whole traceback
(``bentoml._internal.server.http_app.log_exception``), the 400s of its own input validation included, and pydantic's
message there quotes the offending input (``input_value=...``): a piece of the body, features derived from people's
faces and voices. :class:`ClientErrorLogFilter`, on that logger, rewrites such a record when the exception is a
client error: one WARNING line with the method, the route, the status, and where and of which kind the problems are
(pydantic's error locations and types, never the input), without the traceback. Server errors keep their traceback.

The service's own 4xx answers log nothing but BentoML's access line (method, path, status, sizes, time).
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

BENTOML_ERROR_LOGGER = "bentoml._internal.server.http_app"
MAX_PROBLEMS = 5  # locations named in one line


def client_error_status(error: BaseException | None) -> int | None:
    """The 4xx status BentoML answers ``error`` with (400 for a pydantic validation error); None: not a 4xx."""
    if isinstance(error, ValidationError):
        return 400
    code = getattr(getattr(error, "error_code", None), "value", None)
    return code if isinstance(code, int) and 400 <= code < 500 else None


def describe_client_error(error: BaseException) -> str:
    """What was wrong, without any input value: pydantic's locations and error types, or the exception's kind."""
    if isinstance(error, ValidationError):
        problems = error.errors(include_url=False, include_context=False, include_input=False)
        named = [f"{'.'.join(map(str, problem['loc'])) or 'body'} ({problem['type']})" for problem in problems]
        more = f" and {len(named) - MAX_PROBLEMS} more" if len(named) > MAX_PROBLEMS else ""
        return f"{len(named)} validation error(s) at " + ", ".join(named[:MAX_PROBLEMS]) + more
    return type(error).__name__


class ClientErrorLogFilter(logging.Filter):
    """Turns BentoML's ``Exception on <path> [<method>]`` record of a client error into one WARNING line."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        status = client_error_status(error)
        if status is None or error is None:
            return True
        path, method = (*record.args, "?", "?")[:2] if isinstance(record.args, tuple) else ("?", "?")
        record.msg = "%s %s answered %d: %s"
        record.args = (method, path, status, describe_client_error(error))
        record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def install_client_error_filter() -> None:
    """Put :class:`ClientErrorLogFilter` on BentoML's error logger (once per process)."""
    logger = logging.getLogger(BENTOML_ERROR_LOGGER)
    if not any(isinstance(existing, ClientErrorLogFilter) for existing in logger.filters):
        logger.addFilter(ClientErrorLogFilter())
