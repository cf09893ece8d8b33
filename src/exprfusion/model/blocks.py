"""The blocks :class:`exprfusion.model.fusion_transformer.FusionTransformer` is assembled from (its module diagram
shows the order).

Every attention here is "safe": a window whose keys are all unavailable never forms a softmax over only -inf, so
outputs and gradients stay finite.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from exprfusion.model.fusion_config import FusionConfig


def _safe_key_padding(available: Tensor) -> tuple[Tensor, Tensor]:
    """Turn an availability mask (B, T) into a key padding mask that never masks a whole row.

    Returns ``(key_padding, has_any)``: ``key_padding`` is True where a key must be ignored, except in rows with
    no available key at all, which are left fully visible (a softmax over only -inf would be NaN); ``has_any`` (B,)
    tells the caller which rows to zero afterwards.
    """
    has_any = available.any(dim=1)  # (B,)
    key_padding = ~available & has_any[:, None]  # (B, T)
    return key_padding, has_any


class ModalityDropout(nn.Module):
    """In training, drop one whole modality from a window with probability ``p`` (the face with ``visual_share``).

    Dropping sets that branch's availability mask all False; the model then zeroes its features. A modality is
    never dropped when the other one has no available frame in the window, so a window never loses both.
    Draws come from ``generator`` when given, else from the global RNG (deterministic under ``torch.manual_seed``).
    """

    def __init__(self, p: float, visual_share: float = 0.5) -> None:
        super().__init__()
        self.p = p
        self.visual_share = visual_share

    def forward(
        self, face_mask: Tensor, audio_mask: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Return the (face_mask, audio_mask) pair after dropout; unchanged in eval mode or when ``p == 0``."""
        if not self.training or self.p == 0.0:
            return face_mask, audio_mask
        batch = face_mask.shape[0]
        device = generator.device if generator is not None else face_mask.device
        draws = torch.rand(2, batch, generator=generator, device=device).to(face_mask.device)  # (2, B)
        drop_window = draws[0] < self.p
        choose_visual = draws[1] < self.visual_share
        drop_visual = drop_window & choose_visual & audio_mask.any(dim=1)  # (B,)
        drop_audio = drop_window & ~choose_visual & face_mask.any(dim=1)
        return face_mask & ~drop_visual[:, None], audio_mask & ~drop_audio[:, None]


def sinusoidal_positions(max_len: int, d_model: int) -> Tensor:
    """Return the fixed sinusoidal positional table of "Attention Is All You Need", shape (max_len, d_model)."""
    positions = torch.arange(max_len, dtype=torch.float32)[:, None]  # (L, 1)
    frequencies = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    angles = positions * frequencies  # (L, ceil(d/2))
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return table


class ModalityProjection(nn.Module):
    """Project one modality's frame features to the model width: Linear → LayerNorm → + positions → dropout."""

    def __init__(self, in_dim: int, config: FusionConfig) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, config.d_model)
        self.norm = nn.LayerNorm(config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        # Not persistent: the table is a function of (max_len, d_model) and need not bloat checkpoints.
        self.register_buffer("positions", sinusoidal_positions(config.max_len, config.d_model), persistent=False)

    def forward(self, features: Tensor) -> Tensor:
        """Map features (B, T, in_dim) to (B, T, d_model)."""
        return self.positioned(self.frame_part(features))

    def frame_part(self, features: Tensor) -> Tensor:
        """What each frame gets alone, whatever window holds it: Linear → LayerNorm, (..., in_dim) → (..., d_model)."""
        return self.norm(self.linear(features))

    def positioned(self, hidden: Tensor) -> Tensor:
        """Windows (B, T, d_model) of :meth:`frame_part` rows with the positions added (and dropout)."""
        length = hidden.shape[1]
        if length > self.positions.shape[0]:
            raise ValueError(f"Window of {length} frames exceeds max_len={self.positions.shape[0]}")
        return self.dropout(hidden + self.positions[:length])


class TemporalEncoder(nn.Module):
    """A pre-norm GELU Transformer encoder over one branch's frames, attending only to available frames.

    Nested tensors are disabled (they drop padded rows), and a window with no available frame at all attends to
    every frame and is then zeroed, so its output is finite and carries no information.
    """

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            d_model=config.d_model,
            nhead=config.n_heads,
            dim_feedforward=config.feedforward_dim,
            dropout=config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, num_layers=config.n_layers, norm=nn.LayerNorm(config.d_model), enable_nested_tensor=False
        )

    def forward(self, hidden: Tensor, available: Tensor) -> Tensor:
        """Encode hidden (B, T, D) given availability (B, T) bool; returns (B, T, D)."""
        key_padding, has_any = _safe_key_padding(available)
        encoded = self.encoder(hidden, src_key_padding_mask=key_padding)  # (B, T, D)
        return encoded.masked_fill(~has_any[:, None, None], 0.0)


class SafeCrossAttention(nn.Module):
    """Queries from one branch attend to the other branch's available frames; residual + LayerNorm around it.

    When the other branch has no available frame in a window, the attention output for that window is zero (the
    queries pass through the residual alone); the softmax is never taken over an all-masked row, so neither the
    output nor its gradients can be NaN.
    """

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(config.d_model, config.n_heads, dropout=config.dropout, batch_first=True)
        self.dropout = nn.Dropout(config.dropout)
        self.norm = nn.LayerNorm(config.d_model)

    def forward(self, queries: Tensor, keys: Tensor, key_available: Tensor) -> Tensor:
        """Attend queries (B, Tq, D) to keys (B, Tk, D) where ``key_available`` (B, Tk) is True; returns (B, Tq, D)."""
        key_padding, has_any = _safe_key_padding(key_available)
        attended, _ = self.attention(queries, keys, keys, key_padding_mask=key_padding, need_weights=False)
        attended = attended.masked_fill(~has_any[:, None, None], 0.0)  # (B, Tq, D)
        return self.norm(queries + self.dropout(attended))


class GatedFusion(nn.Module):
    """Per-frame learnable gate ``g = sigmoid(W [h_v; h_a] + b)``, ``fused = g * h_v + (1 - g) * h_a``.

    Availability overrides the learned gate so the model leans on the branch that is present: ``g = 0`` where the
    face is missing (audio only), ``g = 1`` where the audio is missing, ``g = 1/2`` where both are missing.
    The gate is a vector (one weight per channel), as in gated multimodal units.
    """

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.gate = nn.Linear(2 * config.d_model, config.d_model)

    def forward(self, visual: Tensor, audio: Tensor, face_mask: Tensor, audio_mask: Tensor) -> Tensor:
        """Fuse visual and audio (B, T, D) frame by frame under masks (B, T); returns (B, T, D)."""
        gate = torch.sigmoid(self.gate(torch.cat([visual, audio], dim=-1)))  # (B, T, D)
        only_visual = (face_mask & ~audio_mask)[..., None]  # (B, T, 1)
        only_audio = (~face_mask & audio_mask)[..., None]
        neither = (~face_mask & ~audio_mask)[..., None]
        gate = gate.masked_fill(only_visual, 1.0).masked_fill(only_audio, 0.0).masked_fill(neither, 0.5)
        return gate * visual + (1.0 - gate) * audio


class ClassifierHead(nn.Sequential):
    """Per-frame MLP head: LayerNorm → Linear(d, d) → GELU → dropout → Linear(d, n_classes)."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(
            nn.LayerNorm(config.d_model),
            nn.Linear(config.d_model, config.d_model),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.d_model, config.n_classes),
        )


class WindowMeanReadout(nn.Module):
    """A linear classifier on the mean of each stream's standardised features over the window's present frames
    (and the share of frames where it is present), added to every frame's logits.

    It is the per-window form of the smoothed logistic regression a user builds first (exprfusion.evaluation.baseline):
    with
    few subjects, a linear read of averaged features generalises where a deep encoder memorises, so the encoders
    only have to learn what it cannot. Zero-initialised: training starts from the deep path alone.
    """

    def __init__(self, stream_dims: list[int], config: FusionConfig) -> None:
        super().__init__()
        self.dropout = nn.Dropout(config.readout_dropout)
        self.linear = nn.Linear(sum(dim + 1 for dim in stream_dims), config.n_classes)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, streams: list[tuple[Tensor, Tensor]]) -> Tensor:
        """``streams``: ``(features (B, T, D), available (B, T))`` pairs, features already zero where absent;
        returns logits (B, 1, n_classes), one row per window."""
        parts = []
        for features, available in streams:
            present = available.to(features.dtype).sum(dim=1, keepdim=True)  # (B, 1)
            parts.append(features.sum(dim=1) / present.clamp(min=1.0))  # (B, D): the mean over present frames
            parts.append(present / available.shape[1])  # (B, 1): the share of frames where the stream is present
        return self.linear(self.dropout(torch.cat(parts, dim=-1)))[:, None, :]
