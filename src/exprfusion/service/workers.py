"""How the service's processes share the machine: ``EXPRFUSION_WORKERS`` prediction workers, their torch threads,
and the memory a large request leaves behind.

BentoML limits a CPU worker's BLAS/OpenMP threads to 1 unless the service declares CPUs; one video's windows are one
batched forward pass, which uses every core it is given. Each worker therefore takes ``EXPRFUSION_TORCH_THREADS``
threads, or by default the cores shared out among the prediction workers (all of them with one worker); the
streaming worker takes as many as one prediction worker.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Callable

from exprfusion.core.environment import Environment, environment


def torch_threads(env: Environment | None = None) -> int:
    """Torch threads of one service worker: ``EXPRFUSION_TORCH_THREADS``, else the cores / ``EXPRFUSION_WORKERS``."""
    env = env or environment()
    return env.torch_threads or max(1, (os.cpu_count() or 1) // env.workers)


def prediction_workers() -> int:
    """``EXPRFUSION_WORKERS``: the prediction workers of one server (``make serve WORKERS=N``)."""
    return environment().workers


def release_freed_memory() -> bool:
    """Hand the memory freed inside this process back to the operating system (glibc's ``malloc_trim``); whether
    it could be asked.

    A large body arrives in many small pieces that land on the C heap; once joined and freed, glibc keeps their
    pages for reuse, so a worker that answered one hour-long request would stay gigabytes large. Called once a
    large body is answered (:class:`exprfusion.service.limits.RequestGuard`). Elsewhere than glibc, nothing happens.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
