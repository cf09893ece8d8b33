"""The one way the project starts or joins Ray: the search (``tune``) and the extraction's scale-out both use it."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def ray_session(num_cpus: int | None = None) -> Iterator[None]:
    """Use a running Ray, else connect to ``RAY_ADDRESS``, else start a quiet local Ray; stop only what was started.

    Args:
        num_cpus: CPUs of a local Ray (None: Ray's own count); ignored when joining a cluster.
    """
    import ray

    if ray.is_initialized():
        yield
        return
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, **quiet)
    else:
        local = {} if num_cpus is None else {"num_cpus": num_cpus}
        ray.init(include_dashboard=False, **local, **quiet)
    try:
        yield
    finally:
        ray.shutdown()
