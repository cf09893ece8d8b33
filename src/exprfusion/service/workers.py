"""How the service's processes share the machine: ``EXPRFUSION_WORKERS`` prediction workers and their torch threads.

BentoML limits a CPU worker's BLAS/OpenMP threads to 1 unless the service declares CPUs; one video's windows are one
batched forward pass, which uses every core it is given. Each worker therefore takes ``EXPRFUSION_TORCH_THREADS``
threads, or by default the cores shared out among the prediction workers (all of them with one worker); the
streaming worker takes as many as one prediction worker.
"""

from __future__ import annotations

import os

from exprfusion.core.environment import Environment, environment


def torch_threads(env: Environment | None = None) -> int:
    """Torch threads of one service worker: ``EXPRFUSION_TORCH_THREADS``, else the cores / ``EXPRFUSION_WORKERS``."""
    env = env or environment()
    return env.torch_threads or max(1, (os.cpu_count() or 1) // env.workers)


def prediction_workers() -> int:
    """``EXPRFUSION_WORKERS``: the prediction workers of one server (``make serve WORKERS=N``)."""
    return environment().workers
