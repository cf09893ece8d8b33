"""Focal loss and class-weight helper."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from exprfusion.core.labels import IGNORE_LABEL, NUM_CLASSES
from exprfusion.training.losses import FocalLoss, inverse_frequency_weights


def logits_and_targets(seed: int = 0, shape: tuple[int, ...] = (3, 10)) -> tuple[torch.Tensor, torch.Tensor]:
    """Random logits (*shape, C) and targets (*shape) with roughly a fifth ignored."""
    generator = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(*shape, NUM_CLASSES, generator=generator)).requires_grad_()
    targets = torch.randint(0, NUM_CLASSES, shape, generator=generator)
    targets[torch.rand(shape, generator=generator) < 0.2] = IGNORE_LABEL
    return logits, targets


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, **kwargs) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, NUM_CLASSES), targets.reshape(-1), ignore_index=IGNORE_LABEL, **kwargs)


def test_gamma_zero_equals_cross_entropy_with_ignored_frames():
    logits, targets = logits_and_targets()
    assert (targets == IGNORE_LABEL).any()
    torch.testing.assert_close(FocalLoss(gamma=0.0)(logits, targets), cross_entropy(logits, targets))


def test_accepts_flat_frames():
    logits, targets = logits_and_targets(shape=(30,))
    torch.testing.assert_close(FocalLoss(gamma=0.0)(logits, targets), cross_entropy(logits, targets))


def test_matches_the_focal_formula_on_one_frame():
    logits = torch.tensor([[2.0, 0.5, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    p_true = torch.softmax(logits, -1)[0, 1].item()
    expected = -((1 - p_true) ** 2) * math.log(p_true)
    assert FocalLoss(gamma=2.0)(logits, torch.tensor([1])).item() == pytest.approx(expected, rel=1e-5)


def test_ignored_frames_do_not_change_the_loss_or_receive_gradient():
    logits, targets = logits_and_targets()
    loss = FocalLoss()(logits, targets)
    loss.backward()
    ignored = targets == IGNORE_LABEL
    assert torch.equal(logits.grad[ignored], torch.zeros_like(logits.grad[ignored]))
    changed = logits.detach().clone()
    changed[ignored] = torch.randn_like(changed[ignored]) * 100
    torch.testing.assert_close(FocalLoss()(changed, targets), loss.detach())


@pytest.mark.parametrize("gamma", [0.5, 2.0, 5.0])
def test_positive_gamma_never_exceeds_cross_entropy(gamma):
    logits, targets = logits_and_targets()
    focal = FocalLoss(gamma=gamma, reduction="none")(logits, targets)
    plain = FocalLoss(gamma=0.0, reduction="none")(logits, targets)
    assert (focal <= plain).all()
    assert FocalLoss(gamma=gamma)(logits, targets) < cross_entropy(logits, targets)


def test_class_weights_follow_cross_entropy_normalisation():
    logits, targets = logits_and_targets()
    weights = torch.linspace(0.5, 3.0, NUM_CLASSES)
    torch.testing.assert_close(
        FocalLoss(gamma=0.0, class_weights=weights)(logits, targets), cross_entropy(logits, targets, weight=weights)
    )
    per_frame = FocalLoss(gamma=2.0, reduction="none")(logits, targets)
    valid = targets != IGNORE_LABEL
    alpha = weights[targets[valid]]
    expected = (alpha * per_frame[valid]).sum() / alpha.sum()
    torch.testing.assert_close(FocalLoss(gamma=2.0, class_weights=weights)(logits, targets), expected)


def test_all_ignored_batch_gives_a_differentiable_zero():
    logits, _ = logits_and_targets()
    targets = torch.full(logits.shape[:-1], IGNORE_LABEL)
    loss = FocalLoss(class_weights=torch.ones(NUM_CLASSES))(logits, targets)
    assert loss.item() == 0.0
    assert loss.grad_fn is not None
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    assert not logits.grad.any()


def test_frame_mask_skips_frames_like_the_ignore_label():
    logits, targets = logits_and_targets()
    frame_mask = torch.rand(targets.shape, generator=torch.Generator().manual_seed(5)) < 0.5
    masked_targets = targets.masked_fill(~frame_mask, IGNORE_LABEL)
    torch.testing.assert_close(FocalLoss()(logits, targets, frame_mask), FocalLoss()(logits, masked_targets))
    assert FocalLoss()(logits, targets, torch.zeros_like(frame_mask)).item() == 0.0


def test_sum_and_none_reductions_agree():
    logits, targets = logits_and_targets()
    per_frame = FocalLoss(reduction="none")(logits, targets)
    assert per_frame.shape == targets.shape
    assert not per_frame[targets == IGNORE_LABEL].any()
    torch.testing.assert_close(FocalLoss(reduction="sum")(logits, targets), per_frame.sum())


def test_extreme_logits_give_finite_loss_and_gradients():
    logits = torch.tensor([[1e4, -1e4, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]] * 2, requires_grad=True)
    loss = FocalLoss(gamma=0.5)(logits, torch.tensor([0, 1]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def _focal_mean(log_p: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Unweighted focal loss by hand from log-probabilities (N, C), in their own dtype."""
    counted = targets != IGNORE_LABEL
    log_p_target = log_p[counted].gather(1, targets[counted][:, None]).squeeze(1)
    return (-((1 - log_p_target.exp()) ** gamma) * log_p_target).mean()


def test_bfloat16_logits_are_computed_in_float32():
    logits, targets = logits_and_targets(shape=(8, 64))
    rounded = logits.detach().bfloat16()
    loss = FocalLoss()(rounded, targets)
    assert loss.dtype == torch.float32
    # The reference: the bf16 values themselves, upcast to float64 before any arithmetic.
    flat, flat_targets = rounded.reshape(-1, NUM_CLASSES), targets.reshape(-1)
    reference = _focal_mean(torch.log_softmax(flat.double(), dim=-1), flat_targets)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)
    # Control: the same loss with its arithmetic in bf16 lands well outside that tolerance.
    in_bfloat16 = _focal_mean(torch.log_softmax(flat, dim=-1), flat_targets).float()
    assert abs(in_bfloat16.item() - reference.item()) > 1e-4 * reference.item()


def test_inverse_frequency_weights_favour_rare_classes():
    counts = [177_198, 16_573, 10_771, 9_080, 95_463, 78_751, 31_615, 165_866]  # Aff-Wild2 train, with a face
    weights = inverse_frequency_weights(counts)
    assert weights.shape == (NUM_CLASSES,)
    assert weights.mean().item() == pytest.approx(1.0)
    assert weights[3] == weights.max() and weights[0] == weights.min()  # Fear rarest, Neutral commonest
    torch.testing.assert_close(weights[3] / weights[0], torch.tensor((177_198 / 9_080) ** 0.5))
    torch.testing.assert_close(inverse_frequency_weights(counts, power=0.0), torch.ones(NUM_CLASSES))


def test_inverse_frequency_weights_give_absent_classes_zero_and_reject_bad_counts():
    weights = inverse_frequency_weights([10, 0, 40])
    assert weights[1] == 0 and weights[0] > weights[2]
    with pytest.raises(ValueError):
        inverse_frequency_weights([3, -1])
    with pytest.raises(ValueError):
        inverse_frequency_weights([0, 0])
