"""Where a model runs: device choice and the autocast precision that goes with it.

Training, inference, evaluation and the service all pick their device and precision here, so none of them imports
another's code. ``precision="auto"`` runs bf16 autocast where the hardware computes it natively (CUDA; CPUs with
AVX-512 BF16 or AMX) and fp32 elsewhere, where emulated bf16 would only be slower. Losses are computed in fp32
either way (``losses.FocalLoss`` upcasts the logits).
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from exprfusion.core.errors import InputError

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AVX-512 BF16 or AMX tiles)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def uses_bf16(device: torch.device, precision: str = "auto") -> bool:
    """Whether ``precision`` on ``device`` means bf16 autocast."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
    return precision == "bf16"


def autocast_for(device: torch.device, precision: str = "auto") -> torch.autocast | nullcontext:
    """bf16 autocast where :func:`uses_bf16` says so, else nothing (fp32)."""
    if uses_bf16(device, precision):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()
