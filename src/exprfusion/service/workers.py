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
import sys
from collections.abc import Callable

import torch

from exprfusion.core.environment import Environment, environment

SWITCH_INTERVAL_SECONDS = 0.0005  # the interpreter's default is 0.005 (set_up_worker)


def torch_threads(env: Environment | None = None) -> int:
    """Torch threads of one service worker: ``EXPRFUSION_TORCH_THREADS``, else the cores / ``EXPRFUSION_WORKERS``."""
    env = env or environment()
    return env.torch_threads or max(1, (os.cpu_count() or 1) // env.workers)


def set_up_worker() -> None:
    """Set this worker process up for the model: its torch threads (:func:`torch_threads`), and the interpreter's
    switch interval at :data:`SWITCH_INTERVAL_SECONDS`.

    A worker receives bodies on its event loop (HTTP parsing in Python) while the model runs in a thread. With many
    clients uploading at once the loop holds the interpreter lock for up to the switch interval (5 ms by default)
    before the model thread gets it back between two torch operations; a shorter interval lets the model go on
    sooner. Measured with 30 clients of one-minute ``.npz`` requests, 2 cores, six interleaved runs each:
    8.5 requests/s against 7.6 with the default interval.
    """
    torch.set_num_threads(torch_threads())
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)


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
