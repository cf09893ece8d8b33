"""Where a model runs: device choice and the autocast precision that goes with it.

Training, inference, evaluation and the service all pick their device here, so none of them imports another's code.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_for(device: torch.device) -> torch.autocast | nullcontext:
    """bf16 autocast on CUDA, nothing on CPU (fp32 there)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()
