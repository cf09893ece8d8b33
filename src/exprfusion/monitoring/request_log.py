"""The service's request log: JSON lines written off the request path by a thread, rotated by size, and read back.

One writer per process (size rotation is safe only within one process): each worker of a service writes its own
file beside the configured name, ``requests-<server>-w<worker>.jsonl`` for ``requests.jsonl``
(:mod:`exprfusion.service.request_log_location`). A request only puts its record on a bounded in-memory queue; a
background thread writes it. A full queue, a full disk or an unwritable path drops records (one warning per
process), never fails or slows a request. :func:`read_request_log` reads the configured name's files, every worker's
and every rotated one, or a folder of logs. The records and the report drawn from them:
:mod:`exprfusion.monitoring.drift_report`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import queue
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from exprfusion.core.errors import InputError, MissingInputError
from exprfusion.core.labels import NUM_CLASSES
from exprfusion.monitoring.drift import reference_distribution

QUEUE_LENGTH = 10_000  # records waiting for the writer thread; beyond it, records are dropped
RECORD_KEYS = ("time", "model_version", "n_frames", "counts", "missing_face", "missing_audio", "reference")

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


def _rotated(path: Path) -> list[Path]:
    """``path``'s rotated siblings and ``path`` itself where they exist, oldest first (``log.3, log.2, log.1, log``)."""
    siblings = [p for p in path.parent.glob(f"{path.name}.*") if p.suffix[1:].isdigit()]
    siblings.sort(key=lambda p: int(p.suffix[1:]), reverse=True)
    return siblings + ([path] if path.is_file() else [])


def log_files(path: str | Path) -> list[Path]:
    """The files of a request log, each with its rotated siblings, oldest first.

    ``path`` is the configured name (``logs/requests.jsonl``: that file and every worker's ``requests-*.jsonl``
    beside it) or a folder (every ``*.jsonl`` in it).

    Raises:
        MissingInputError: no such file.
    """
    path = Path(path)
    if path.is_dir():
        bases = sorted(path.glob("*.jsonl"))
        return [file for base in bases for file in _rotated(base)]
    bases = [path, *sorted(path.parent.glob(f"{path.stem}-*{path.suffix}"))]
    files = [file for base in bases for file in _rotated(base)]
    if not files:
        raise MissingInputError(
            f"request log {path} does not exist, nor any worker's {path.stem}-*{path.suffix} beside it, nor a rotated "
            f"{path.name}.N"
        )
    return files


def read_request_log(paths: Sequence[str | Path], read: dict[Path, int] | None = None) -> list[dict[str, Any]]:
    """Every record of the logs (see :func:`log_files`), sorted by time; ``read``, if given, gets the number of
    records of each file read.

    Raises:
        InputError: a line that is not a record (names the file and line).
    """
    records = []
    for path in paths:
        for file in log_files(path):
            before = len(records)
            for number, line in enumerate(file.read_text(errors="replace").splitlines(), start=1):
                if line.strip():
                    records.append(_parse_record(line, f"{file}:{number}"))
            if read is not None:
                read[file] = read.get(file, 0) + len(records) - before
    records.sort(key=lambda record: record["time"])
    return records


def _parse_record(line: str, where: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise InputError(f"{where}: not a JSON record ({error.msg})") from None
    if not isinstance(record, dict) or any(key not in record for key in RECORD_KEYS):
        missing = [key for key in RECORD_KEYS if not isinstance(record, dict) or key not in record]
        raise InputError(f"{where}: record lacks {missing}")
    counts = record["counts"]
    if (
        not isinstance(counts, list)
        or len(counts) != NUM_CLASSES
        or any(not isinstance(c, int) or c < 0 for c in counts)
    ):
        raise InputError(f"{where}: 'counts' must be {NUM_CLASSES} non-negative whole numbers, got {counts!r}")
    if sum(counts) != record["n_frames"]:
        raise InputError(f"{where}: 'counts' sum to {sum(counts)}, 'n_frames' is {record['n_frames']}")
    if record["reference"] is not None:
        record["reference"] = reference_distribution(record["reference"]).tolist()
    return record
