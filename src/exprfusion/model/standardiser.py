"""Per-dimension feature standardisation fitted on training frames and stored in the model (FeatureStandardiser).

Real frame features need it: per-dimension means are often ten times their spread, and transformer hidden states
carry a few dimensions 10–100 times larger than the rest. ``robust`` statistics (median, interquartile range) keep a
silence floor or a massive activation from setting the scale.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn


class FeatureStandardiser(nn.Module):
    """Per-dimension ``(x - mean) / std`` with statistics fitted once on training frames; identity until fitted.

    The statistics are buffers: they travel in the state dict, so a saved model standardises its inputs wherever it
    is loaded. A dimension that never varies keeps a spread of 1 (it is centred, not blown up).
    """

    CHUNK_ROWS = 65_536  # rows summed at a time, so fitting a full-scale split never holds it in float64
    ROBUST_ROWS = 20_000  # rows (evenly spaced) whose quantiles the robust statistics come from

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, features: Tensor, present: Tensor, robust: bool = False) -> None:
        """Fit mean and spread on the rows of ``features`` (N, dim) where ``present`` (N,) is True.

        With ``robust`` the centre is each dimension's median and the spread its interquartile range / 1.349 (the
        standard deviation of a normal distribution with that range), from at most ``ROBUST_ROWS`` evenly spaced
        rows; a dimension whose quartiles coincide keeps its ordinary spread.
        """
        rows = features[present.bool()]
        if rows.shape[0] == 0:
            return  # nothing to learn from: stay the identity
        self._fit_moments(rows)
        if robust:
            self._fit_quantiles(rows)

    def _fit_quantiles(self, rows: Tensor) -> None:
        """Replace the mean by the median and the spread by IQR / 1.349 where the quartiles differ."""
        picked = torch.linspace(0, rows.shape[0] - 1, min(rows.shape[0], self.ROBUST_ROWS), device=rows.device)
        sample = rows[picked.round().long()].float().cpu().numpy()
        # numpy's selection-based quantiles: 4x faster than torch.quantile's full sort on CPU, the same values.
        quartiles = torch.from_numpy(np.quantile(sample, [0.25, 0.5, 0.75], axis=0).astype(np.float32))
        lower, median, upper = quartiles.to(rows.device)
        spread = (upper - lower) / 1.349
        keep = spread > 1e-6 * median.abs().clamp(min=1.0)
        self.mean.copy_(median.to(self.mean.dtype))
        self.std.copy_(torch.where(keep, spread.to(self.std.dtype), self.std))

    def _fit_moments(self, rows: Tensor) -> None:
        """Mean and standard deviation of ``rows``, summed in float64 chunks."""
        total = torch.zeros(rows.shape[1], dtype=torch.float64, device=rows.device)
        squares = torch.zeros_like(total)
        for start in range(0, rows.shape[0], self.CHUNK_ROWS):
            chunk = rows[start : start + self.CHUNK_ROWS].to(torch.float64)
            total += chunk.sum(dim=0)
            squares += (chunk * chunk).sum(dim=0)
        count = rows.shape[0]
        mean = total / count
        std = (squares / count - mean * mean).clamp(min=0.0).sqrt()
        std = torch.where(std > 1e-6 * mean.abs().clamp(min=1.0), std, torch.ones_like(std))
        self.mean.copy_(mean.to(self.mean.dtype))
        self.std.copy_(std.to(self.std.dtype))

    def forward(self, features: Tensor) -> Tensor:
        """Standardise features (..., dim)."""
        return (features - self.mean.to(features.dtype)) / self.std.to(features.dtype)

    def standardised_copy(self, features: Tensor, dtype: torch.dtype) -> Tensor:
        """:meth:`forward` of ``features`` cast to ``dtype``, computed in place in one new tensor: the same values,
        without an intermediate tensor per step (each costs a pass over fresh memory)."""
        values = features.to(dtype, copy=True)
        return values.sub_(self.mean.to(dtype)).div_(self.std.to(dtype))
