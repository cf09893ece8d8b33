"""The class-balanced linear experts beside the deep path: smoothing, combination and training, against hand sums."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from factories import make_planted_record
from sklearn.linear_model import LogisticRegression

from exprfusion.data.corpus_writer import CorpusWriter
from exprfusion.data.split_tensors import load_split
from exprfusion.evaluation.scoring import score_split
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.fusion_transformer import FusionTransformer
from exprfusion.model.linear_experts import present_mean
from exprfusion.training.expert_fit import ABSENT_CLASS_BIAS, fit_linear_experts, score_expert_weights
from exprfusion.training.train import train_model
from exprfusion.training.train_config import TrainConfig

# The training runs of these tests: tiny windows, no median filter (the experts' own smoothing is what is tested).
TINY_TRAIN = TrainConfig(epochs=3, batch_size=8, window=16, stride=8, eval_stride=8, median_kernel=1, device="cpu")


def _config(**overrides) -> FusionConfig:
    return FusionConfig.paper(visual_dim=3, audio_dim=4, d_model=16, n_layers=1, n_heads=2, **overrides)


def test_present_mean_averages_the_present_frames_within_the_radius():
    values = torch.randn(2, 7, 3)
    present = torch.tensor([[1, 0, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0, 1]], dtype=torch.bool)
    means, covered = present_mean(values, present, radius=2)
    for b in range(2):
        for t in range(7):
            near = [s for s in range(max(0, t - 2), min(7, t + 3)) if present[b, s]]
            assert bool(covered[b, t]) == bool(near)
            expected = values[b, near].mean(dim=0) if near else torch.zeros(3)
            torch.testing.assert_close(means[b, t], expected)


def test_untrained_experts_have_no_opinion():
    """Zero-initialised experts give every class the same evidence: the deep path's ranking is unchanged."""
    torch.manual_seed(0)
    model = FusionTransformer(_config(joint_expert_weight=1.0, audio_expert_weight=1.0)).eval()
    plain = FusionTransformer(_config()).eval()
    plain.load_state_dict(model.state_dict(), strict=False)
    inputs = (
        torch.randn(2, 6, 3),
        torch.randn(2, 6, 4),
        torch.ones(2, 6, dtype=torch.bool),
        torch.ones(2, 6, dtype=torch.bool),
    )
    with torch.no_grad():
        shift = model(*inputs) - F.log_softmax(plain(*inputs), dim=-1)
    torch.testing.assert_close(shift, torch.full_like(shift, np.log(1 / 8)))


def _set_random_experts(model: FusionTransformer) -> None:
    with torch.no_grad():
        for layer in (model.linear_experts.joint, model.linear_experts.audio):
            layer.weight.copy_(torch.randn_like(layer.weight))
            layer.bias.copy_(torch.randn_like(layer.bias))


def _smoothed_log(logits: torch.Tensor, present: torch.Tensor, radius: int) -> torch.Tensor:
    """By hand, frame by frame: the log of the mean probability over present frames within ±radius."""
    probabilities = logits.softmax(dim=-1)
    out = torch.zeros_like(logits)
    for t in range(logits.shape[0]):
        near = [s for s in range(max(0, t - radius), min(logits.shape[0], t + radius + 1)) if present[s]]
        if near:
            out[t] = probabilities[near].mean(dim=0).log()
    return out


def test_windows_with_faces_add_the_weighted_joint_expert_to_the_fused_head():
    torch.manual_seed(1)
    model = FusionTransformer(
        _config(joint_expert_weight=0.5, audio_expert_weight=3.0, expert_smoothing=1, aux_loss_weight=1.0)
    ).eval()
    _set_random_experts(model)
    plain = FusionTransformer(_config(aux_loss_weight=1.0)).eval()
    plain.load_state_dict(model.state_dict(), strict=False)
    visual, audio = torch.randn(1, 5, 3), torch.randn(1, 5, 4)
    face_mask = torch.tensor([[True, False, True, True, False]])
    audio_mask = torch.tensor([[True, True, False, False, False]])
    with torch.no_grad():
        logits = model(visual, audio, face_mask, audio_mask)
        fused = plain(visual, audio, face_mask, audio_mask)
    # The joint expert reads both streams zeroed where absent (the standardisers are the identity) and two flags.
    rows = torch.cat(
        [
            visual[0] * face_mask[0, :, None],
            face_mask[0, :, None],
            audio[0] * audio_mask[0, :, None],
            audio_mask[0, :, None],
        ],
        dim=1,
    ).float()
    joint = rows @ model.linear_experts.joint.weight.T + model.linear_experts.joint.bias
    expected = F.log_softmax(fused[0], dim=-1) + 0.5 * _smoothed_log(joint, face_mask[0] | audio_mask[0], 1)
    torch.testing.assert_close(logits[0], expected)


def test_a_faceless_window_adds_the_audio_expert_to_the_audio_head():
    torch.manual_seed(2)
    model = FusionTransformer(
        _config(joint_expert_weight=0.5, audio_expert_weight=2.0, expert_smoothing=2, aux_loss_weight=1.0)
    ).eval()
    _set_random_experts(model)
    visual, audio = torch.randn(1, 6, 3), torch.randn(1, 6, 4)
    face_mask = torch.zeros(1, 6, dtype=torch.bool)
    audio_mask = torch.tensor([[True, True, False, False, False, False]])  # frame 5 has no audio within ±2
    with torch.no_grad():
        logits = model(visual, audio, face_mask, audio_mask)
        encoded = model.audio_encoder(model.audio_projection(audio * audio_mask[..., None]), audio_mask)
        audio_head = model.audio_aux_head(encoded)[0]
    audio_expert = audio[0] @ model.linear_experts.audio.weight.T + model.linear_experts.audio.bias
    expected = F.log_softmax(audio_head, dim=-1) + 2.0 * _smoothed_log(audio_expert, audio_mask[0], 2)
    torch.testing.assert_close(logits[0], expected)
    torch.testing.assert_close(logits[0, 5], F.log_softmax(audio_head[5], dim=-1)), "no audio near: no opinion"


def test_a_class_no_training_frame_has_is_never_the_audio_experts_answer(tmp_path):
    record = make_planted_record("t0", "train", n=120, dims=(3, 4), seed=0, signal="audio")
    labels = np.where(np.arange(120) % 2 == 0, 0, 3)  # only classes 0 and 3
    with CorpusWriter(tmp_path / "corpus") as writer:
        writer.add(dataclasses.replace(record, labels=labels))
    model = FusionTransformer(_config(audio_expert_weight=1.0))
    fit_linear_experts(model, load_split(tmp_path / "corpus", "train"))
    bias, weight = model.linear_experts.audio.bias, model.linear_experts.audio.weight
    absent = [c for c in range(8) if c not in (0, 3)]
    assert torch.all(bias[absent] == ABSENT_CLASS_BIAS) and torch.all(weight[absent] == 0)
    assert torch.all(weight[[0, 3]].abs().sum(dim=1) > 0)


@pytest.fixture(scope="module")
def audio_planted(tmp_path_factory):
    """A corpus whose classes are planted in the audio only; a tiny model with experts trained on it."""
    root = tmp_path_factory.mktemp("experts") / "corpus"
    with CorpusWriter(root) as writer:
        for i in range(4):
            writer.add(make_planted_record(f"t{i}", "train", n=160, dims=(8, 8), seed=i, signal="audio"))
        for i in range(2):
            writer.add(make_planted_record(f"v{i}", "validation", n=160, dims=(8, 8), seed=50 + i, signal="audio"))
    config = dataclasses.replace(TINY_TRAIN, lr=3e-3, selection="validation")
    model_config = FusionConfig.paper(
        d_model=16, n_layers=1, n_heads=2, aux_loss_weight=1.0, joint_expert_weight=1.0, audio_expert_weight=4.0
    )
    return train_model(root, model_config, config).model, load_split(root, "train"), load_split(root, "validation")


def test_the_audio_expert_is_fitted_once_and_kept_through_training(audio_planted):
    model, train, _ = audio_planted
    fresh = copy.deepcopy(model)
    with torch.no_grad():
        fresh.linear_experts.audio.weight.zero_()
    fit_linear_experts(fresh, train)  # the same standardisation, the same sample: the same fit
    torch.testing.assert_close(fresh.linear_experts.audio.weight, model.linear_experts.audio.weight)


def test_the_audio_expert_finds_a_signal_planted_in_the_audio(audio_planted):
    model, _, validation = audio_planted
    with torch.no_grad():
        standardised = model.audio_standardiser(validation.audio.float())
        predicted = model.linear_experts.audio(standardised).argmax(dim=-1).numpy()
    accuracy = float(np.mean(predicted == validation.labels.numpy()))
    assert accuracy >= 0.9, f"the audio expert alone is right on {accuracy:.0%} of frames"


def test_the_combined_scores_stay_float32_under_bfloat16_autocast():
    torch.manual_seed(4)
    model = FusionTransformer(_config(joint_expert_weight=2.0, audio_expert_weight=8.0, aux_loss_weight=1.0)).eval()
    _set_random_experts(model)
    face_mask = torch.ones(2, 6, dtype=torch.bool)
    face_mask[1] = False
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        scores = model(torch.randn(2, 6, 3), torch.randn(2, 6, 4), face_mask, torch.ones(2, 6, dtype=torch.bool))
    assert scores.dtype == torch.float32 and torch.isfinite(scores).all()


def test_scoring_expert_weights_restores_the_models_own_weight(audio_planted):
    model, _, validation = audio_planted
    inference = TINY_TRAIN.inference()
    scores = score_expert_weights(model, "joint", validation, [0.0, 1.0], inference)
    assert model.linear_experts.weights["joint"] == 1.0
    own = score_split(model, validation, inference).metrics["macro_f1"]
    assert scores[1.0] == round(own, 4), "the configured weight scores as the model does"


def _fitted_joint_corpus(root, seed=0):
    with CorpusWriter(root) as writer:
        for i in range(3):
            writer.add(make_planted_record(f"t{i}", "train", n=120, dims=(3, 4), seed=seed + i))
    return load_split(root, "train")


def test_a_fitted_joint_expert_is_the_balanced_logistic_regression_of_its_inputs(tmp_path):
    """The baseline's fit on [visual, face flag, audio, audio flag], built by hand."""
    train = _fitted_joint_corpus(tmp_path / "corpus")
    model = FusionTransformer(_config(joint_expert_weight=1.0))
    model.fit_standardisation(train.visual, train.audio, train.face_mask, train.audio_mask)
    fit_linear_experts(model, train)
    assert not any(parameter.requires_grad for parameter in model.linear_experts.joint.parameters())
    with torch.no_grad():  # every frame has both streams and fewer frames than the sample size: all are read
        visual = (train.visual.float() - model.visual_standardiser.mean) / model.visual_standardiser.std
        audio = (train.audio.float() - model.audio_standardiser.mean) / model.audio_standardiser.std
    ones = np.ones((train.n_frames, 1))
    design = np.hstack([visual.numpy(), ones, audio.numpy(), ones])
    reference = LogisticRegression(C=0.01, class_weight="balanced", max_iter=100, tol=1e-3)
    reference.fit(design, train.labels.numpy())
    np.testing.assert_allclose(
        model.linear_experts.joint.weight[reference.classes_].numpy(), reference.coef_, rtol=1e-3, atol=1e-4
    )
    np.testing.assert_allclose(
        model.linear_experts.joint.bias[reference.classes_].numpy(), reference.intercept_, rtol=1e-3, atol=1e-4
    )


def test_the_fitted_experts_do_not_learn_with_the_model():
    model = FusionTransformer(_config(joint_expert_weight=1.0, audio_expert_weight=1.0, aux_loss_weight=1.0))
    branches = {}
    masks = torch.ones(2, 6, dtype=torch.bool)
    model.train()(torch.randn(2, 6, 3), torch.randn(2, 6, 4), masks, masks, branch_outputs=branches)
    assert set(branches) == {"visual", "audio"}, "only the branches' own heads have a training loss"
    assert model.linear_experts.fitted == ("joint", "audio")
    assert not any(parameter.requires_grad for parameter in model.linear_experts.parameters())


def test_expert_fits_are_remembered_only_for_the_same_inputs(tmp_path):
    first = _fitted_joint_corpus(tmp_path / "a", seed=0)
    other = _fitted_joint_corpus(tmp_path / "b", seed=10)
    weights = []
    for train in (first, other, first):
        model = FusionTransformer(_config(joint_expert_weight=1.0))
        model.fit_standardisation(train.visual, train.audio, train.face_mask, train.audio_mask)
        fit_linear_experts(model, train)
        weights.append(model.linear_experts.joint.weight.clone())
    assert not torch.equal(weights[0], weights[1]), "other frames: another fit"
    torch.testing.assert_close(weights[0], weights[2])
