"""The service's request log writer: JSON lines written off the request path by a thread, rotated by size.

One writer per process (size rotation is safe only within one process): a service with several workers gives each
its own file, :func:`worker_log_path`. A request only puts its record on a bounded in-memory queue; a background
thread writes it. A full queue, a full disk or an unwritable path drops records (one warning per process), never
fails or slows a request. The records and the report read from them: :mod:`exprfusion.monitoring.drift_report`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import queue
from pathlib import Path
from typing import Any

QUEUE_LENGTH = 10_000  # records waiting for the writer thread; beyond it, records are dropped

warnings = logging.getLogger("exprfusion.monitoring.request_log")


class _QuietRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating file handler that reports a write failure once (as a warning) instead of a traceback per record."""

    failed = False

    def handleError(self, record: logging.LogRecord) -> None:
        if not self.failed:
            self.failed = True
            warnings.warning("request log %s cannot be written; records are dropped", self.baseFilename)


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    """Puts records on the queue without blocking; a full queue drops the record (reported once)."""

    dropped = False

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record  # the message is already the JSON line: no formatting on the request path

    def handleError(self, record: logging.LogRecord) -> None:
        if not self.dropped:
            self.dropped = True
            warnings.warning("request log queue full; records are dropped")


def worker_log_path(path: str | Path, worker_index: int | None) -> Path:
    """The file one worker writes: ``requests.jsonl`` → ``requests-w2.jsonl`` for worker 2 (unchanged if None)."""
    path = Path(path)
    return path if worker_index is None else path.with_name(f"{path.stem}-w{worker_index}{path.suffix}")


class RequestLog:
    """A JSON-lines log written by a background thread; :meth:`write` never blocks and never raises."""

    def __init__(self, path: str | Path, max_bytes: int, backups: int) -> None:
        self.path = Path(path)
        self._logger = logging.getLogger(f"exprfusion.requests.{id(self)}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        with contextlib.suppress(OSError):  # the file handler reports the failure at the first write
            self.path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = _QuietRotatingFileHandler(self.path, maxBytes=max_bytes, backupCount=backups, delay=True)
        file_handler.setFormatter(logging.Formatter("%(message)s"))
        records: queue.Queue[logging.LogRecord] = queue.Queue(QUEUE_LENGTH)
        self._logger.addHandler(_DroppingQueueHandler(records))
        self._listener = logging.handlers.QueueListener(records, file_handler)
        self._listener.start()

    def write(self, record: dict[str, Any]) -> None:
        """Queue one record (a JSON-serialisable dict) for writing."""
        try:
            self._logger.info(json.dumps(record, separators=(",", ":")))
        except Exception:  # a record that cannot be written must never fail the request
            warnings.exception("request log record dropped")

    def close(self) -> None:
        """Write what is queued and stop the writer thread."""
        self._listener.stop()
