"""FusionConfig: dict round trip, derived widths, presets, and the refusal of unknown keys and invalid values."""

from __future__ import annotations

import pytest
from tiny_models import tiny_config, tiny_model

from exprfusion.core.errors import InputError
from exprfusion.model.fusion_config import PAPER_MODEL, FusionConfig


def test_config_round_trips_through_a_dict():
    config = tiny_config(fusion="audio", dropout=0.2)
    assert FusionConfig.from_dict(config.to_dict()) == config
    assert FusionConfig.from_dict({}) == FusionConfig()


def test_an_unset_feed_forward_width_is_four_times_the_model_width():
    assert FusionConfig(d_model=64).feedforward_dim == 256
    assert FusionConfig(d_model=64, ff_dim=100).feedforward_dim == 100
    assert FusionConfig(d_model=64).to_dict()["ff_dim"] is None, "stored unset: a searched width resizes it"
    model = tiny_model(d_model=32)
    assert model.audio_encoder.encoder.layers[0].linear1.out_features == 128


def test_config_rejects_unknown_keys_by_name():
    with pytest.raises(InputError, match=r"FusionConfig\.hidden_size: unknown key; known: \["):
        FusionConfig.from_dict(FusionConfig().to_dict() | {"hidden_size": 3})


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"d_model": 30, "n_heads": 4}, r"n_heads \(4\) must divide d_model \(30\)"),
        ({"fusion": "concat"}, r"FusionConfig\.fusion: must be one of 'gated', 'visual' or 'audio', got 'concat'"),
        ({"modality_dropout": 1.5}, r"FusionConfig\.modality_dropout: must be <= 1\.0, got 1\.5"),
        ({"d_model": 0}, r"FusionConfig\.d_model: must be >= 1, got 0"),
    ],
)
def test_config_rejects_invalid_values_in_one_line(bad, message):
    with pytest.raises(InputError, match=message) as caught:
        FusionConfig(**bad)
    assert "\n" not in str(caught.value)


def test_the_paper_preset_is_one_name_away():
    paper = FusionConfig.paper()
    assert (paper.d_model, paper.n_layers, paper.modality_dropout, paper.normalisation) == (256, 3, 0.1, "global")
    assert paper.aux_loss_weight == 0.0 and paper.joint_expert_weight == paper.audio_expert_weight == 0.0
    assert FusionConfig.paper(d_model=512, n_heads=8).d_model == 512
    assert {key: getattr(paper, key) for key in PAPER_MODEL} == PAPER_MODEL
    assert paper != FusionConfig(), "the pipeline's model is not the paper's"


def test_an_older_artefacts_removed_training_options_are_dropped():
    stored = FusionConfig().to_dict() | {"input_dropout": 0.0, "input_noise": 0.5, "joint_expert_fit": "sgd"}
    assert FusionConfig.from_artifact(stored) == FusionConfig()
    with pytest.raises(InputError, match="input_dropout"):
        FusionConfig.from_dict(stored)
