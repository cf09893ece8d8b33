"""The value statistics of real pretrained-model features, laid over the synthetic features.

Real frame features are far from zero-mean and unit-spread: per-dimension means are several times the
per-dimension spread, transformer hidden states carry a few "massive activation" dimensions 10-100x larger than
the rest, and log-mel energies are negative with silence at a floor. A profile asks for these through
:class:`~exprfusion.sources.synthetic.profiles.FeatureStatistics`; none of them moves where the information lies.
"""

from __future__ import annotations

import numpy as np

from exprfusion.sources.synthetic.profiles import FeatureStatistics


def dimension_affine(stats: FeatureStatistics, dim: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension scale and offset ``(scale, offset)``, float32 ``[dim]`` each.

    Scales are log-normal around ``stats.spread``; each offset is ``offset_ratio`` times its dimension's scale
    (negative for log energies, else of random sign); ``massive_dims`` dimensions drawn at random get an offset
    ``massive_ratio`` times the median offset magnitude, so they are near-constant and far larger than the rest.
    """
    scale = stats.spread * rng.lognormal(0.0, stats.spread_sigma, size=dim)
    ratio = rng.uniform(*stats.offset_ratio, size=dim)
    sign = -np.ones(dim) if stats.negative else rng.choice((-1.0, 1.0), size=dim)
    offset = sign * ratio * scale
    massive = rng.choice(dim, size=min(stats.massive_dims, dim), replace=False)
    typical = float(np.median(np.abs(offset)))
    offset[massive] = sign[massive] * typical * rng.uniform(*stats.massive_ratio, size=massive.size)
    return scale.astype(np.float32), offset.astype(np.float32)


def apply_floor(features: np.ndarray, silent: np.ndarray, stats: FeatureStatistics, rng: np.random.Generator) -> None:
    """Clip ``features`` at the floor and set the ``silent`` frames to it, plus a little non-negative noise.

    Works in place on float16 features ``[n, D]``; ``silent`` is a boolean ``[n]``. Does nothing without a floor.
    """
    if stats.floor is None:
        return
    np.maximum(features, stats.floor, out=features)
    noise = np.abs(rng.standard_normal((int(silent.sum()), features.shape[1]), dtype=np.float32))
    features[silent] = stats.floor + stats.floor_noise * noise
