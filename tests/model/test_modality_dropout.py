"""Modality dropout: whole modalities per window, never both, about p of the windows, reproducible."""

from __future__ import annotations

import pytest
import torch
from tiny_models import FRAMES, random_inputs, tiny_model

from exprfusion.model.blocks import ModalityDropout


def random_masks(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Availability masks where some windows already lack a whole modality."""
    generator = torch.Generator().manual_seed(seed)
    face_mask = torch.rand(batch, FRAMES, generator=generator) < 0.8
    audio_mask = torch.rand(batch, FRAMES, generator=generator) < 0.9
    face_mask[::7] = False
    audio_mask[::5] = False
    return face_mask, audio_mask


@pytest.mark.parametrize("p", [0.3, 1.0])
def test_modality_dropout_never_drops_both_and_only_drops_whole_modalities(p):
    dropout = ModalityDropout(p).train()
    for seed in range(20):
        face_mask, audio_mask = random_masks(batch=200, seed=seed)
        torch.manual_seed(seed)
        new_face, new_audio = dropout(face_mask, audio_mask)
        had_something = face_mask.any(1) | audio_mask.any(1)
        assert torch.equal(new_face.any(1) | new_audio.any(1), had_something)
        for old, new in ((face_mask, new_face), (audio_mask, new_audio)):
            assert not (new & ~old).any()  # never adds frames
            changed = (new != old).any(1)
            assert not new[changed].any()  # a changed modality is gone from the whole window


def test_modality_dropout_drops_about_p_of_windows_evenly_between_modalities():
    batch, p = 20_000, 0.3
    face_mask = torch.ones(batch, FRAMES, dtype=torch.bool)
    audio_mask = torch.ones(batch, FRAMES, dtype=torch.bool)
    new_face, new_audio = ModalityDropout(p).train()(face_mask, audio_mask, generator=torch.Generator().manual_seed(0))
    visual_dropped = (~new_face.any(1)).float().mean().item()
    audio_dropped = (~new_audio.any(1)).float().mean().item()
    assert visual_dropped + audio_dropped == pytest.approx(p, abs=0.015)
    assert visual_dropped == pytest.approx(p / 2, abs=0.015)


def test_modality_dropout_with_p_one_drops_exactly_one_modality_per_window():
    ones = torch.ones(500, FRAMES, dtype=torch.bool)
    new_face, new_audio = ModalityDropout(1.0).train()(ones, ones)
    assert torch.equal(new_face.any(1) ^ new_audio.any(1), torch.ones(500, dtype=torch.bool))


def test_modality_dropout_is_a_no_op_in_eval_mode():
    face_mask, audio_mask = random_masks(batch=50, seed=0)
    new_face, new_audio = ModalityDropout(1.0).eval()(face_mask, audio_mask)
    assert torch.equal(new_face, face_mask)
    assert torch.equal(new_audio, audio_mask)
    model = tiny_model(modality_dropout=1.0).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(**random_inputs()), model(**random_inputs()), rtol=0, atol=0)


def test_modality_dropout_is_deterministic_under_a_seed():
    face_mask, audio_mask = random_masks(batch=100, seed=3)
    dropout = ModalityDropout(0.5).train()
    torch.manual_seed(7)
    first = dropout(face_mask, audio_mask)
    torch.manual_seed(7)
    second = dropout(face_mask, audio_mask)
    third = dropout(face_mask, audio_mask, generator=torch.Generator().manual_seed(7))
    fourth = dropout(face_mask, audio_mask, generator=torch.Generator().manual_seed(7))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(third, fourth, strict=True))
