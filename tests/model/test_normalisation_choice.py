"""`normalisation: auto`: the selection split decides between features as they come and features centred per video."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from factories import make_planted_record

from exprfusion.core.errors import InputError
from exprfusion.data.corpus_writer import CorpusWriter
from exprfusion.data.split_tensors import load_split
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.fusion_transformer import FusionTransformer
from exprfusion.training.normalisation_choice import choose_normalisation, resolve_normalisation
from exprfusion.training.train import train_model
from exprfusion.training.train_config import TrainConfig


def _identity_dominated(index: int, split: str = "train"):
    """Every class in every video, each video shifted by its own large offset (who the person is)."""
    record = make_planted_record(f"{split[0]}{index}", split, n=200, dims=(8, 6), seed=index, strength=2.0)
    rng = np.random.default_rng(1000 + index)
    visual = record.visual.astype(np.float32) + rng.normal(0.0, 10.0, size=8).astype(np.float32)
    audio = record.audio.astype(np.float32) + rng.normal(0.0, 10.0, size=6).astype(np.float32)
    return dataclasses.replace(record, visual=visual.astype(np.float16), audio=audio.astype(np.float16))


def _one_class_per_video(index: int, split: str = "train"):
    """Each video shows one class throughout, planted in its faces: its mean is its expression."""
    record = make_planted_record(f"{split[0]}{index}", split, n=200, dims=(8, 6), seed=index, strength=3.0)
    labels = np.full(200, index % 4, dtype=np.int64)
    rng = np.random.default_rng(index)
    visual = rng.standard_normal((200, 8)).astype(np.float32)
    visual[:, index % 4] += 3.0
    return dataclasses.replace(record, visual=visual.astype(np.float16), labels=labels)


def _corpus(root, make, n_train=10, n_validation=2):
    with CorpusWriter(root) as writer:
        for index in range(n_train):
            writer.add(make(index))
        for index in range(n_validation):
            writer.add(make(100 + index, "validation"))
    return load_split(root, "train"), load_split(root, "validation")


def test_identity_dominated_features_are_centred_per_video(tmp_path):
    train, validation = _corpus(tmp_path / "corpus", _identity_dominated)
    choice = resolve_normalisation("auto", "holdout", 0.2, train, validation)
    assert choice.chosen == "video"
    assert choice.scores["video"] > choice.scores["robust"] + 0.2  # offsets 5x the signal: raw frames are confused


def test_videos_of_one_expression_keep_their_mean(tmp_path):
    train, validation = _corpus(tmp_path / "corpus", _one_class_per_video)
    choice = resolve_normalisation("auto", "holdout", 0.2, train, validation)
    assert choice.chosen == "robust"
    assert choice.scores["robust"] > choice.scores["video"] + 0.1  # centred, each video keeps its noise only


def test_a_set_normalisation_is_not_second_guessed(tmp_path):
    train, validation = _corpus(tmp_path / "corpus", _identity_dominated)
    assert resolve_normalisation("global", "holdout", 0.2, train, validation) is None


def test_holdout_choice_never_reads_the_validation_split(tmp_path):
    train, validation = _corpus(tmp_path / "corpus", _identity_dominated)
    poisoned = dataclasses.replace(
        validation,
        visual=torch.full_like(validation.visual, float("nan")),
        labels=torch.zeros_like(validation.labels),
    )
    honest = resolve_normalisation("auto", "holdout", 0.2, train, validation)
    assert resolve_normalisation("auto", "holdout", 0.2, train, poisoned) == honest


def test_selection_on_validation_chooses_there(tmp_path):
    """With ``selection: validation`` the whole training split is fitted and the validation split scores."""
    train, validation = _corpus(tmp_path / "corpus", _identity_dominated)
    assert resolve_normalisation("auto", "validation", 0.2, train, validation) == choose_normalisation(
        train, validation
    )


def test_auto_is_resolved_before_a_model_is_built(tmp_path):
    with pytest.raises(InputError, match="auto"):
        FusionTransformer(
            FusionConfig.paper(visual_dim=8, audio_dim=6, d_model=16, n_layers=1, n_heads=2, normalisation="auto")
        )
    _corpus(tmp_path / "corpus", _identity_dominated, n_train=6)
    config = TrainConfig(epochs=1, batch_size=8, window=16, stride=8, eval_stride=8, median_kernel=1, device="cpu")
    model_config = FusionConfig.paper(d_model=16, n_layers=1, n_heads=2, normalisation="auto")
    result = train_model(tmp_path / "corpus", model_config, config)
    assert result.normalisation_choice.chosen == "video"
    assert result.model.config.normalisation == "video"


def test_the_search_decides_once_on_the_trials_holdout(tmp_path):
    """The driver's choice is the one train_model would make on the same holdout; a set normalisation stands."""
    from exprfusion.search.tune import _choose_normalisation

    train, validation = _corpus(tmp_path / "corpus", _identity_dominated)
    settings = TrainConfig(holdout_fraction=0.3).to_dict()
    choice = _choose_normalisation(tmp_path / "corpus", "auto", settings)
    assert choice == resolve_normalisation("auto", "holdout", 0.3, train, validation)
    assert choice.chosen == "video"
    assert _choose_normalisation(tmp_path / "corpus", "robust", settings) is None
