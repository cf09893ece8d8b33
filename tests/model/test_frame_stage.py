"""Inference computes the model's per-frame stage once per frame and gathers its rows into windows
(exprfusion.inference.window_logits): the logits must be those of the model's own forward pass over gathered windows
of raw features, the plain reading of the model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import exprfusion.inference.window_logits as window_logits_module
from exprfusion.data.split_tensors import gather_inputs
from exprfusion.data.windows import build_window_index, window_batches
from exprfusion.inference.window_logits import VideoFrames, centred_per_video, window_logits
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.fusion_transformer import FusionTransformer

WIDTHS = (24, 20)
CONFIGS = {
    "default": {},
    "window readout": {"window_readout": "both"},
    "visual only": {"fusion": "visual"},
    "audio only": {"fusion": "audio"},
    "per-video normalisation": {"normalisation": "video"},
    "no experts, no auxiliary heads": {"aux_loss_weight": 0.0, "joint_expert_weight": 0.0, "audio_expert_weight": 0.0},
}


def _video(n: int = 301) -> VideoFrames:
    rng = np.random.default_rng(0)
    face_mask = rng.random(n) > 0.3
    face_mask[100:160] = False  # windows without any face take the audio path
    visual = (3 + rng.standard_normal((n, WIDTHS[0]))).astype(np.float16)
    audio = rng.standard_normal((n, WIDTHS[1])).astype(np.float16)
    return VideoFrames.from_arrays(visual, audio, face_mask, rng.random(n) > 0.2)


def _model(**changes) -> FusionTransformer:
    torch.manual_seed(0)
    settings = {"normalisation": "robust", **changes}
    model = FusionTransformer(
        FusionConfig(visual_dim=WIDTHS[0], audio_dim=WIDTHS[1], d_model=16, n_heads=2, **settings)
    )
    for parameter in model.parameters():  # the experts start at zero: give every weight a say
        torch.nn.init.normal_(parameter, std=0.3)
    return model.eval()


@torch.no_grad()
def _forward_over_windows(model: FusionTransformer, frames: VideoFrames, index, padding_absent: bool = True):
    """The plain reading: raw features gathered into windows, the model's forward pass on each batch."""
    if model.config.normalisation == "video":
        visual, audio = centred_per_video(frames, index.lengths, index.offsets)
        frames = VideoFrames(visual=visual, audio=audio, face_mask=frames.face_mask, audio_mask=frames.audio_mask)
    rows, valid = torch.from_numpy(index.rows), torch.from_numpy(index.valid)
    outputs = []
    for batch in window_batches(index.n_windows, 64):
        ids = torch.from_numpy(batch)
        mask_valid = valid[ids] if padding_absent else torch.ones_like(valid[ids])
        outputs.append(model(*gather_inputs(frames, rows[ids], mask_valid)).float().numpy())
    return np.concatenate(outputs)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_window_logits_equal_the_forward_pass_over_gathered_windows(name, monkeypatch):
    frames, model = _video(), _model(**CONFIGS[name])
    index = build_window_index([frames.n_frames], 32, 16)  # 301 frames: the last window is end-aligned
    expected = _forward_over_windows(model, frames, index)
    whole = window_logits(model, frames, index, precision="fp32")
    np.testing.assert_array_equal(whole, expected)  # one chunk: the same operations on the same rows
    monkeypatch.setattr(window_logits_module, "FRAME_CHUNK", 37)  # frames computed 37 at a time
    chunked = window_logits(model, frames, index, precision="fp32")
    np.testing.assert_allclose(chunked, expected, rtol=1e-5, atol=1e-5)
    assert (chunked.argmax(-1) == expected.argmax(-1)).all()


def test_padding_positions_are_read_as_absent():
    """Control: a video shorter than a window is padded; reading the padding as present frames changes the logits,
    so the equality above does check how padding rows are filled."""
    frames, model = _video(20), _model()
    index = build_window_index([frames.n_frames], 32, 16)
    expected = _forward_over_windows(model, frames, index)
    np.testing.assert_array_equal(window_logits(model, frames, index, precision="fp32"), expected)
    padding_present = _forward_over_windows(model, frames, index, padding_absent=False)
    assert np.abs(padding_present[:, :20] - expected[:, :20]).max() > 1e-3
