"""Mixup over windows: features blended where the model reads them, masks united, both labels kept."""

from __future__ import annotations

import pytest
import torch

from exprfusion.core.errors import InputError
from exprfusion.data.split_tensors import WindowBatch
from exprfusion.training.mixup import mix_windows
from exprfusion.training.train_config import TrainConfig


def test_windows_are_blended_with_absent_frames_at_the_standardisation_mean():
    # Two windows of two frames, one feature per modality; window 1 has no face on its second frame.
    batch = WindowBatch(
        visual=torch.tensor([[[1.0], [2.0]], [[5.0], [0.0]]], dtype=torch.float16),
        audio=torch.tensor([[[10.0], [20.0]], [[30.0], [40.0]]]),
        face_mask=torch.tensor([[True, True], [True, False]]),
        audio_mask=torch.tensor([[True, True], [False, False]]),
        labels=torch.tensor([[0, 1], [2, -1]]),
    )
    mixed, partner_labels = mix_windows(
        batch, torch.tensor([1, 0]), 0.25, visual_mean=torch.tensor([4.0]), audio_mean=torch.tensor([-8.0])
    )
    # By hand: own * 0.25 + partner * 0.75, an absent frame counting as the mean (4 for faces, -8 for audio).
    expected_visual = torch.tensor(
        [[[0.25 * 1 + 0.75 * 5], [0.25 * 2 + 0.75 * 4]], [[0.25 * 5 + 0.75 * 1], [0.25 * 4 + 0.75 * 2]]]
    )
    expected_audio = torch.tensor(
        [[[0.25 * 10 + 0.75 * -8], [0.25 * 20 + 0.75 * -8]], [[0.25 * -8 + 0.75 * 10], [0.25 * -8 + 0.75 * 20]]]
    )
    torch.testing.assert_close(mixed.visual, expected_visual)
    torch.testing.assert_close(mixed.audio, expected_audio)
    assert mixed.face_mask.tolist() == [[True, True], [True, True]]
    assert mixed.audio_mask.tolist() == [[True, True], [True, True]]
    assert mixed.labels.tolist() == [[0, 1], [2, -1]] and partner_labels.tolist() == [[2, -1], [0, 1]]


def test_a_negative_mixup_alpha_is_refused():
    with pytest.raises(InputError, match="mixup_alpha"):
        TrainConfig(mixup_alpha=-0.1)
