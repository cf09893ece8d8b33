"""FusionConfig: dict round trip, derived widths, and the refusal of unknown keys and invalid values."""

from __future__ import annotations

import pytest
from tiny_models import tiny_config

from exprfusion.model.fusion_config import FusionConfig


def test_config_round_trips_through_a_dict():
    config = tiny_config(fusion="audio", dropout=0.2)
    assert FusionConfig.from_dict(config.to_dict()) == config
    assert FusionConfig.from_dict({}) == FusionConfig()


def test_config_resolves_default_feed_forward_width():
    assert FusionConfig(d_model=64).ff_dim == 256
    assert FusionConfig(d_model=64, ff_dim=100).ff_dim == 100


def test_config_rejects_unknown_keys_by_name():
    with pytest.raises(ValueError, match="hidden_size"):
        FusionConfig.from_dict(FusionConfig().to_dict() | {"hidden_size": 3})


@pytest.mark.parametrize("bad", [{"d_model": 30, "n_heads": 4}, {"fusion": "concat"}, {"modality_dropout": 1.5}])
def test_config_rejects_invalid_values(bad):
    with pytest.raises(ValueError):
        FusionConfig(**bad)
