"""Focal loss over per-frame logits, with an ignore label, optional frame masks and class weights."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from exprfusion.core.errors import InputError
from exprfusion.core.labels import IGNORE_LABEL

REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")
# Floor for (1 - p_t) so d/dp (1 - p_t)^gamma stays finite when gamma < 1 and a frame is predicted with p_t = 1.
_MIN_MISS_PROBABILITY = 1e-12


class FocalLoss(nn.Module):
    """Alpha-weighted focal loss ``-alpha_y (1 - p_y)^gamma log p_y`` (Lin et al., 2017) for frame labels.

    A frame counts when its target is not ``ignore_index`` and its ``frame_mask`` entry (if given) is True.
    With ``reduction="mean"`` the loss is ``sum(alpha_y * focal) / sum(alpha_y)`` over counted frames, the same
    normalisation as ``F.cross_entropy(weight=...)``; without weights ``alpha_y = 1`` and it is a plain mean. With
    ``gamma=0`` it equals cross-entropy. If no frame counts, the loss is a zero that still has a ``grad_fn``.
    ``reduction="none"`` returns per-frame losses shaped like ``targets`` (0 at frames that do not count).
    """

    def __init__(
        self,
        gamma: float = 2.0,
        class_weights: Tensor | None = None,
        ignore_index: int = IGNORE_LABEL,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if gamma < 0:
            raise InputError(f"focal loss gamma must be >= 0, got {gamma}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.gamma = gamma
        self.ignore_index = ignore_index
        self.reduction = reduction
        # A buffer so that .to(device) moves the weights with the module.
        weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weights", weights)

    def forward(self, logits: Tensor, targets: Tensor, frame_mask: Tensor | None = None) -> Tensor:
        """Compute the loss.

        Args:
            logits: (N, C) or (B, T, C), any float dtype (computed in float32).
            targets: integer labels shaped like ``logits`` without the class axis; ``ignore_index`` = skip.
            frame_mask: optional bool mask shaped like ``targets``; False = skip the frame (e.g. no face).
        """
        if logits.shape[:-1] != targets.shape:
            raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} do not match")
        flat_logits = logits.reshape(-1, logits.shape[-1]).float()  # (N, C)
        flat_targets = targets.reshape(-1)  # (N,)
        counted = flat_targets != self.ignore_index
        if frame_mask is not None:
            counted = counted & frame_mask.reshape(-1).bool()
        safe_targets = flat_targets.masked_fill(~counted, 0)  # any valid index; these frames are zeroed below

        log_p_target = F.log_softmax(flat_logits, dim=-1).gather(1, safe_targets[:, None]).squeeze(1)  # (N,)
        miss_probability = (-torch.expm1(log_p_target)).clamp_min(_MIN_MISS_PROBABILITY)  # 1 - p_y, accurately
        per_frame = -(miss_probability**self.gamma) * log_p_target
        weights = counted.float()
        if self.class_weights is not None:
            weights = weights * self.class_weights[safe_targets]
        per_frame = torch.where(counted, per_frame * weights, torch.zeros_like(per_frame))

        if self.reduction == "none":
            return per_frame.reshape(targets.shape)
        total = per_frame.sum()
        if self.reduction == "sum":
            return total
        total_weight = weights.sum()
        # No counted frame: total is an exact 0 with a grad_fn; divide by 1 instead of 0.
        return total / torch.where(total_weight > 0, total_weight, torch.ones_like(total_weight))


def inverse_frequency_weights(counts: Sequence[float] | np.ndarray | Tensor, power: float = 0.5) -> Tensor:
    """Class weights ``w_c ∝ (1 / count_c) ** power``, scaled to mean 1 over classes that occur.

    ``power=1`` is full inverse frequency, ``power=0.5`` (default) its square root, which boosts rare classes
    (Fear, Disgust at ~2 % of Aff-Wild2 frames) without letting a handful of frames dominate; ``power=0`` gives
    all ones. Classes with a zero count get weight 0 (they contribute no frames anyway). The overall scale does
    not change :class:`FocalLoss` with ``reduction="mean"``, which divides by the summed weights.
    """
    counts_tensor = torch.as_tensor(counts, dtype=torch.float64).cpu()
    if counts_tensor.ndim != 1 or (counts_tensor < 0).any():
        raise ValueError(f"counts must be a 1-D sequence of non-negative numbers, got {counts_tensor.tolist()}")
    present = counts_tensor > 0
    if not present.any():
        raise InputError("class counts are all zero (no labelled frame): no class to weight")
    weights = torch.zeros_like(counts_tensor)
    weights[present] = counts_tensor[present].reciprocal() ** power
    return (weights / weights[present].mean()).float()
