"""Mixup over training windows (Zhang et al., 2018): each window is blended with another of its batch.

Features are mixed where the model reads them, after per-dimension standardisation: an absent frame (no face, no
audio) counts as the standardised mean (zero), so mixing a present frame with an absent one shrinks it towards the
mean instead of towards whatever value the file holds there. A frame is present after mixing where it was present
in either window. The loss is the same blend of the losses against both windows' labels.
"""

from __future__ import annotations

import torch
from torch import Tensor

from exprfusion.data.split_tensors import WindowBatch


def _with_absent_at(features: Tensor, present: Tensor, fill: Tensor) -> Tensor:
    """``features`` (B, T, D) as float32, with the frames where ``present`` (B, T) is False set to ``fill`` (D,)."""
    return torch.where(present[..., None], features.float(), fill.float())


def mix_windows(
    batch: WindowBatch, partner: Tensor, weight: float, visual_mean: Tensor, audio_mean: Tensor
) -> tuple[WindowBatch, Tensor]:
    """Blend every window with window ``partner[i]`` of the same batch: ``weight * own + (1 - weight) * partner``.

    Args:
        batch: the gathered windows (features as stored, before standardisation).
        partner: (B,) int, the window each one is mixed with (a permutation of the batch).
        weight: the share of each window's own features, in [0, 1].
        visual_mean: (Dv,) the model's visual standardisation mean: absent faces count as this value.
        audio_mean: (Da,) the same for the audio.

    Returns:
        The mixed batch (its ``labels`` are each window's own) and the partners' labels (B, T).
    """
    visual = _with_absent_at(batch.visual, batch.face_mask, visual_mean)
    audio = _with_absent_at(batch.audio, batch.audio_mask, audio_mean)
    mixed = WindowBatch(
        visual=weight * visual + (1.0 - weight) * visual[partner],
        audio=weight * audio + (1.0 - weight) * audio[partner],
        face_mask=batch.face_mask | batch.face_mask[partner],
        audio_mask=batch.audio_mask | batch.audio_mask[partner],
        labels=batch.labels,
    )
    return mixed, batch.labels[partner]
