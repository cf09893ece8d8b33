"""A fusion model and inputs small enough for a test to run in milliseconds."""

from __future__ import annotations

import torch

from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.fusion_transformer import FusionTransformer

BATCH, FRAMES, FEATURE_DIM = 3, 12, 16


def tiny_config(**overrides) -> FusionConfig:
    """A model small enough to run in milliseconds."""
    values = dict(visual_dim=FEATURE_DIM, audio_dim=FEATURE_DIM, d_model=32, n_layers=2, n_heads=4, max_len=64)
    return FusionConfig.paper(**(values | overrides))


def tiny_model(seed: int = 0, **overrides) -> FusionTransformer:
    torch.manual_seed(seed)
    return FusionTransformer(tiny_config(**overrides))


def random_inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    """Float16 features (as stored on disk) with every frame available."""
    generator = torch.Generator().manual_seed(seed)
    return {
        "visual": torch.randn(BATCH, FRAMES, FEATURE_DIM, generator=generator).half(),
        "audio": torch.randn(BATCH, FRAMES, FEATURE_DIM, generator=generator).half(),
        "face_mask": torch.ones(BATCH, FRAMES, dtype=torch.bool),
        "audio_mask": torch.ones(BATCH, FRAMES, dtype=torch.bool),
    }


def with_random(inputs: dict[str, torch.Tensor], key: str, seed: int = 99) -> dict[str, torch.Tensor]:
    """Copy of ``inputs`` with ``inputs[key]`` replaced by fresh random values."""
    generator = torch.Generator().manual_seed(seed)
    fresh = torch.randn(inputs[key].shape, generator=generator).to(inputs[key].dtype)
    return inputs | {key: fresh}
