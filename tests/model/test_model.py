"""Behaviour of the fusion Transformer: missing modalities, gradients, precision, auxiliary heads, the readout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from factories import write_learnable_corpus
from tiny_models import BATCH, FRAMES, random_inputs, tiny_config, tiny_model, with_random

from exprfusion.core.devices import cpu_has_native_bf16
from exprfusion.core.labels import NUM_CLASSES
from exprfusion.data.split_tensors import load_split
from exprfusion.inference.window_logits import predict_split
from exprfusion.model.blocks import GatedFusion, ModalityDropout
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.fusion_transformer import FusionTransformer
from exprfusion.training.train import train_model
from exprfusion.training.train_config import TrainConfig


def test_logits_have_one_row_per_frame_from_float16_inputs():
    logits = tiny_model().eval()(**random_inputs())
    assert logits.shape == (BATCH, FRAMES, NUM_CLASSES)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize(
    ("missing_mask", "missing_features", "present_features"),
    [
        ("face_mask", "visual", "audio"),
        ("audio_mask", "audio", "visual"),
    ],
)
def test_window_without_one_modality_is_driven_by_the_other_alone(missing_mask, missing_features, present_features):
    model = tiny_model().eval()
    inputs = random_inputs()
    inputs[missing_mask][0] = False  # sample 0 loses the whole modality
    with torch.no_grad():
        logits = model(**inputs)
        logits_new_missing = model(**with_random(inputs, missing_features))
        logits_new_present = model(**with_random(inputs, present_features))
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(logits_new_missing[0], logits[0], rtol=0, atol=1e-6)
    # The other modality does drive the prediction, so the equality above is not vacuous.
    assert not torch.allclose(logits_new_present[0], logits[0], atol=1e-3)


def test_frames_without_a_face_ignore_their_visual_values():
    model = tiny_model().eval()
    inputs = random_inputs()
    inputs["face_mask"][:, 3:7] = False
    changed = inputs["visual"].clone()
    changed[:, 3:7] = float("nan")  # whatever sits in a no-face row must not leak through
    with torch.no_grad():
        torch.testing.assert_close(model(**(inputs | {"visual": changed})), model(**inputs), rtol=0, atol=1e-6)


@pytest.mark.parametrize("training", [False, True])
def test_window_without_any_modality_gives_finite_logits_and_gradients(training):
    model = tiny_model().train(training)
    inputs = random_inputs()
    inputs["face_mask"][1] = False
    inputs["audio_mask"][1] = False
    logits = model(**inputs)
    assert torch.isfinite(logits).all()
    logits.square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("training", [False, True])
def test_no_module_ever_outputs_nan_when_branches_are_fully_masked(training):
    """Final outputs could hide a NaN by masking it away; check every intermediate activation instead."""
    model = tiny_model(modality_dropout=0.0).train(training)
    inputs = random_inputs()
    inputs["face_mask"][0] = False
    inputs["audio_mask"][1] = False
    inputs["face_mask"][2] = False
    inputs["audio_mask"][2] = False
    non_finite: list[str] = []

    def check_output(name: str):
        def hook(_module, _inputs, output):
            tensor = output[0] if isinstance(output, tuple) else output
            if not torch.isfinite(tensor).all():
                non_finite.append(name)

        return hook

    for name, module in model.named_modules():
        if ".layers." not in name:  # a hook inside an encoder layer would switch off PyTorch's fused path
            module.register_forward_hook(check_output(name))
    with torch.set_grad_enabled(training):  # eval without grad takes PyTorch's fused encoder path
        model(**inputs)
    assert non_finite == []


def test_gradients_reach_both_branch_projections():
    model = tiny_model(modality_dropout=0.0).train()
    logits = model(**random_inputs())
    targets = torch.randint(0, NUM_CLASSES, (BATCH, FRAMES), generator=torch.Generator().manual_seed(1))
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten()).backward()
    for projection in (model.visual_projection, model.audio_projection):
        gradient = projection.linear.weight.grad
        assert torch.isfinite(gradient).all()
        assert gradient.abs().sum() > 0


def test_no_nan_gradient_when_a_branch_is_fully_masked():
    model = tiny_model(modality_dropout=0.0).train()
    inputs = random_inputs()
    inputs["face_mask"][0] = False  # no face in the window
    inputs["audio_mask"][1] = False  # no audio in the window
    inputs["face_mask"][2, ::2] = False  # faces missing on every other frame
    model(**inputs).square().mean().backward()
    gradients = [p.grad for p in model.parameters() if p.grad is not None]
    assert gradients
    assert all(torch.isfinite(g).all() for g in gradients)


def test_gate_leans_on_the_branch_that_is_present():
    torch.manual_seed(0)
    fusion = GatedFusion(tiny_config())
    visual, audio = torch.randn(2, 1, 4, 32).unbind(0)  # (B=1, T=4, D=32) each
    face_mask = torch.tensor([[True, False, True, False]])
    audio_mask = torch.tensor([[True, True, False, False]])
    fused = fusion(visual, audio, face_mask, audio_mask)
    torch.testing.assert_close(fused[0, 1], audio[0, 1])  # no face: audio alone
    torch.testing.assert_close(fused[0, 2], visual[0, 2])  # no audio: visual alone
    torch.testing.assert_close(fused[0, 3], (visual[0, 3] + audio[0, 3]) / 2)  # neither: finite average
    assert not torch.allclose(fused[0, 0], audio[0, 0]) and not torch.allclose(fused[0, 0], visual[0, 0])


def test_eval_fast_path_matches_training_path_without_dropout():
    model = tiny_model(dropout=0.0, modality_dropout=0.0)
    inputs = random_inputs()
    inputs["face_mask"][0] = False
    inputs["audio_mask"][1, :5] = False
    training_logits = model.train()(**inputs)
    with torch.no_grad():
        eval_logits = model.eval()(**inputs)
    torch.testing.assert_close(eval_logits, training_logits.detach(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("fusion", "ignored_mask", "ignored_features"),
    [
        ("visual", "audio_mask", "audio"),
        ("audio", "face_mask", "visual"),
    ],
)
def test_single_modality_baselines_ignore_the_other_modality(fusion, ignored_mask, ignored_features):
    model = tiny_model(fusion=fusion).eval()
    inputs = random_inputs()
    other = with_random(inputs, ignored_features)
    other[ignored_mask] = torch.rand(BATCH, FRAMES) < 0.5
    with torch.no_grad():
        torch.testing.assert_close(model(**other), model(**inputs), rtol=0, atol=0)
    assert model.count_parameters() < tiny_model().count_parameters()


def test_count_parameters_counts_every_trainable_weight():
    model = tiny_model()
    assert model.count_parameters() == sum(p.numel() for p in model.parameters())
    model.head.requires_grad_(False)
    assert model.count_parameters() < model.count_parameters(trainable_only=False)


def test_runs_under_bfloat16_autocast():
    model = tiny_model().train()
    inputs = random_inputs()
    inputs["face_mask"][0] = False
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(**inputs)
    assert torch.isfinite(logits).all()
    logits.float().square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.fixture(scope="module")
def trained_on_planted_signal(tmp_path_factory):
    """A tiny model trained four epochs on a corpus whose classes shift the features, and its validation split."""
    corpus = write_learnable_corpus(tmp_path_factory.mktemp("bf16") / "corpus")
    config = TrainConfig(
        epochs=4, batch_size=8, window=16, stride=8, eval_stride=4, median_kernel=5, lr=3e-3, device="cpu"
    )
    model_config = FusionConfig.paper(d_model=16, n_layers=1, n_heads=2, modality_dropout=0.2)
    result = train_model(corpus, model_config, config)
    return result.model, config.inference(), load_split(corpus, "validation")


def test_bfloat16_labels_agree_with_float32_on_at_least_97_percent_of_frames(trained_on_planted_signal):
    """The served pipeline (windows, soft voting, median filter) run under CPU bf16 autocast and in fp32.

    Both precisions are asked for by name: ``auto`` is bf16 already on a CPU with AVX-512 BF16 or AMX, so it cannot
    serve as the fp32 reference. bf16 autocast casts on any CPU (emulated where not native), so neither is skipped.
    """
    model, inference, validation = trained_on_planted_signal
    fp32 = predict_split(model, validation, inference, precision="fp32")
    bf16 = predict_split(model, validation, inference, precision="bf16")
    assert not np.array_equal(bf16.frame_logits, fp32.frame_logits), "autocast must have changed the arithmetic"
    auto = predict_split(model, validation, inference)
    expected = bf16 if cpu_has_native_bf16() else fp32
    np.testing.assert_array_equal(auto.frame_logits, expected.frame_logits, err_msg="auto: bf16 only where native")
    assert len(np.unique(fp32.labels)) >= 4, "a model predicting one class would agree trivially"
    assert np.isfinite(bf16.frame_logits).all()
    agreement = float(np.mean(bf16.labels == fp32.labels))
    assert agreement >= 0.97, f"bf16 and fp32 labels agree on {agreement:.1%} of frames"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_under_cuda_bfloat16_autocast():
    model = tiny_model().cuda().eval()
    inputs = {key: value.cuda() for key, value in random_inputs().items()}
    inputs["audio_mask"][2] = False
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(**inputs)
    assert torch.isfinite(logits).all()


def test_window_longer_than_max_len_is_rejected():
    inputs = random_inputs()
    model = tiny_model(max_len=FRAMES - 1)
    with pytest.raises(ValueError, match="max_len"):
        model(**inputs)


def test_auxiliary_heads_give_each_branch_its_own_logits_and_frames():
    config = FusionConfig.paper(visual_dim=8, audio_dim=6, d_model=16, n_layers=1, n_heads=2, aux_loss_weight=0.5)
    model = FusionTransformer(config).eval()
    visual, audio = torch.randn(2, 10, 8), torch.randn(2, 10, 6)
    face_mask = torch.ones(2, 10, dtype=torch.bool)
    face_mask[0, :4] = False
    audio_mask = torch.ones(2, 10, dtype=torch.bool)
    branches = {}
    logits = model(visual, audio, face_mask, audio_mask, branch_outputs=branches)
    assert set(branches) == {"visual", "audio"}
    for branch_logits, _seen in branches.values():
        assert branch_logits.shape == logits.shape
    assert torch.equal(branches["visual"][1], face_mask), "the visual head is scored where a face was seen"
    plain = FusionTransformer(FusionConfig.paper(visual_dim=8, audio_dim=6, d_model=16, n_layers=1, n_heads=2))
    untouched = {}
    plain(visual, audio, face_mask, audio_mask, branch_outputs=untouched)
    assert untouched == {} and not hasattr(plain, "visual_aux_head"), "no auxiliary heads without their loss"


def test_a_window_without_any_face_is_answered_by_the_audio_head_alone():
    torch.manual_seed(0)
    config = FusionConfig.paper(visual_dim=8, audio_dim=6, d_model=16, n_layers=1, n_heads=2, aux_loss_weight=1.0)
    model = FusionTransformer(config).eval()
    visual, audio = torch.randn(3, 10, 8), torch.randn(3, 10, 6)
    face_mask = torch.ones(3, 10, dtype=torch.bool)
    face_mask[0] = False  # window 0 has no face at all; window 1 has every face; window 2 has neither input
    face_mask[2] = False
    audio_mask = torch.ones(3, 10, dtype=torch.bool)
    audio_mask[2] = False
    with torch.no_grad():
        logits = model(visual, audio, face_mask, audio_mask)
        # The reference, box by box: standardise, project and encode the audio, then its own head.
        standardised = model.audio_standardiser(audio)
        audio_alone = model.audio_aux_head(model.audio_encoder(model.audio_projection(standardised), audio_mask))
        # And the fused path of window 1, with its faces.
        fused = model(visual[1:2], audio[1:2], face_mask[1:2], audio_mask[1:2])
    torch.testing.assert_close(logits[0], audio_alone[0])
    torch.testing.assert_close(logits[2], audio_alone[2])
    torch.testing.assert_close(logits[1], fused[0])
    assert not torch.allclose(logits[1], audio_alone[1]), "a window with faces keeps the fused head"


def test_visual_drop_share_one_drops_only_faces():
    dropout = ModalityDropout(1.0, visual_share=1.0).train()
    face_mask = torch.ones(64, 5, dtype=torch.bool)
    audio_mask = torch.ones(64, 5, dtype=torch.bool)
    faces, audio = dropout(face_mask, audio_mask, generator=torch.Generator().manual_seed(0))
    assert not faces.any() and audio.all()


def test_window_readout_adds_a_linear_read_of_each_windows_mean_features():
    torch.manual_seed(0)
    config = FusionConfig.paper(visual_dim=2, audio_dim=3, d_model=16, n_layers=1, n_heads=2, window_readout="both")
    model = FusionTransformer(config).eval()
    visual, audio = torch.randn(1, 4, 2), torch.randn(1, 4, 3)
    face_mask = torch.tensor([[True, False, True, True]])
    audio_mask = torch.tensor([[True, True, False, False]])
    with torch.no_grad():
        deep_only = model(visual, audio, face_mask, audio_mask)  # the readout starts at zero
        weight = torch.randn(8, 2 + 1 + 3 + 1)
        bias = torch.randn(8)
        model.window_readout.linear.weight.copy_(weight)
        model.window_readout.linear.bias.copy_(bias)
        logits = model(visual, audio, face_mask, audio_mask)
    # By hand (the standardisers are still the identity): the mean over present frames and the present share.
    visual_mean = (visual[0, 0] + visual[0, 2] + visual[0, 3]) / 3
    audio_mean = (audio[0, 0] + audio[0, 1]) / 2
    read = torch.cat([visual_mean, torch.tensor([0.75]), audio_mean, torch.tensor([0.5])])
    expected = deep_only + (weight @ read + bias)[None, None, :]
    torch.testing.assert_close(logits, expected)


def test_an_audio_window_readout_ignores_the_faces():
    torch.manual_seed(0)
    config = FusionConfig.paper(visual_dim=2, audio_dim=3, d_model=16, n_layers=1, n_heads=2, window_readout="audio")
    model = FusionTransformer(config).eval()
    assert model.window_readout.linear.in_features == 3 + 1, "the audio mean and its present share"
    audio, masks = torch.randn(1, 4, 3), torch.ones(1, 4, dtype=torch.bool)
    weight = torch.randn(8, 4)
    contributions = []
    with torch.no_grad():
        for face in torch.randn(2, 1, 4, 2):
            model.window_readout.linear.weight.zero_()
            deep_only = model(face, audio, masks, masks)
            model.window_readout.linear.weight.copy_(weight)
            contributions.append(model(face, audio, masks, masks) - deep_only)
    expected = weight @ torch.cat([audio[0].mean(dim=0), torch.tensor([1.0])])
    for contribution in contributions:
        torch.testing.assert_close(contribution, expected.expand(1, 4, 8))
