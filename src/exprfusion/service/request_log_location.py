"""Where a service worker writes its request log: a file of its own, outside the Bento store.

``EXPRFUSION_REQUEST_LOG`` (default ``logs/requests.jsonl``) names the log. A relative path is resolved against the
directory the server was started in (``make serve``: the project), never against a worker's working directory, which
BentoML sets to the served Bento's own folder inside its store (``$BENTOML_HOME/bentos``).

Each worker of each server writes its own file, ``<stem>-<host>-<port>-<service>-w<worker><suffix>``, for example
``logs/requests-myhost-3000-exprfusion-w1.jsonl``: two servers (on one host, or on several sharing the folder) never
write one file, and a server restarted on its port appends to its own files again. ``exprfusion drift-report`` given
the configured name or its folder reads every such file (:func:`exprfusion.monitoring.request_log.log_files`).

A log inside the Bento store is refused: an absolute ``EXPRFUSION_REQUEST_LOG`` there is an error when the service
starts; a relative one that resolves there (a server started from inside the store) goes to ``$BENTOML_HOME/logs/``
instead, with a warning.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

from exprfusion.core.environment import environment, variable
from exprfusion.core.errors import InputError

REQUEST_LOG_ENV = variable("request_log")
BENTO_FILE = "bento.yaml"

logger = logging.getLogger("bentoml")  # BentoML's logger for service code: its handlers print to the server's log


def serving_directory() -> Path:
    """The directory the server was started in: the working directory of this worker's parent (``bentoml serve``,
    which returns to it once the service is loaded); this process's own where that cannot be read."""
    try:
        return Path(os.readlink(f"/proc/{os.getppid()}/cwd"))
    except OSError:
        return Path.cwd()


def bentoml_home() -> Path:
    """BentoML's home (``$BENTOML_HOME``, default ``~/bentoml``), whose ``bentos/`` folder is the Bento store."""
    return Path(os.environ.get("BENTOML_HOME") or "~/bentoml").expanduser().resolve()


def bento_folders() -> list[Path]:
    """Folders no log may be written in: the Bento store, and the folder of the Bento this process serves from."""
    folders = [bentoml_home() / "bentos"]
    here = Path.cwd().resolve()
    folders += [folder for folder in (here, *here.parents) if (folder / BENTO_FILE).is_file()][:1]
    return folders


def _inside(path: Path, folders: list[Path]) -> Path | None:
    return next((folder for folder in folders if path == folder or folder in path.parents), None)


def server_name(service: str | None) -> str:
    """``<host>-<port>-<service>``: the host, the port the server listens on (from BentoML's ``BENTOML_RUNNER_MAP``;
    the parent's process id where there is none) and the service, as file-name characters."""
    try:
        addresses = json.loads(os.environ.get("BENTOML_RUNNER_MAP") or "{}")
    except ValueError:
        addresses = {}
    ports = [urlsplit(str(url)).port for url in addresses.values() if str(url).startswith(("http://", "https://"))]
    port = str(ports[0]) if ports and ports[0] else f"pid{os.getppid()}"
    parts = [socket.gethostname().split(".")[0] or "host", port, service or "service"]
    return "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", part) for part in parts)


def request_log_path(setting: str, service: str | None, worker_index: int | None) -> Path:
    """The absolute path of this worker's request log for the setting ``EXPRFUSION_REQUEST_LOG`` (not ``off``).

    Raises:
        InputError: an absolute setting inside the Bento store or the served Bento.
    """
    configured = Path(setting).expanduser()
    folders = bento_folders()
    if configured.is_absolute():
        path = configured.resolve()
        if (folder := _inside(path, folders)) is not None:
            raise InputError(
                f"{REQUEST_LOG_ENV}={setting} lies inside the Bento folder {folder}: name a log outside BentoML's store"
            )
    else:
        path = (serving_directory() / configured).resolve()
        if (folder := _inside(path, folders)) is not None:
            fallback = bentoml_home() / "logs" / configured.name
            logger.warning(
                "%s=%s would put the request log inside the Bento folder %s (the server was started there); "
                "writing %s instead",
                REQUEST_LOG_ENV,
                setting,
                folder,
                fallback.parent,
            )
            path = fallback
    worker = "" if worker_index is None else f"-w{worker_index}"
    return path.with_name(f"{path.stem}-{server_name(service)}{worker}{path.suffix}")


def check_request_log_setting() -> None:
    """Refuse an absolute ``EXPRFUSION_REQUEST_LOG`` inside the Bento store as the service is loaded (by ``bentoml
    serve``, before any worker starts), so the server stops with the message instead of its workers failing."""
    setting = environment().request_log.strip()
    if setting.lower() != "off" and Path(setting).expanduser().is_absolute():
        request_log_path(setting, None, None)
