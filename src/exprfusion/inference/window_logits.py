"""Model inference: window logits over one video or a stacked split, then the one voting and filtering path.

A single video and a whole split go through the same functions: both are frame streams (visual, audio, face mask,
audio mask) with a :class:`~exprfusion.data.windows.WindowIndex` over them; a split's index spans many videos, a
video's index spans one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from exprfusion.core.devices import autocast_for
from exprfusion.core.errors import InputError
from exprfusion.data.split_tensors import SplitData
from exprfusion.data.windows import WindowIndex, build_window_index, window_batches
from exprfusion.inference.voting import FramePrediction, soft_vote, vote_and_filter
from exprfusion.model.artifact import InferenceSettings
from exprfusion.model.fusion_transformer import FusionTransformer

# Windows per forward pass at inference: large enough to keep the model busy, small enough for any GPU or CPU.
INFERENCE_BATCH_SIZE = 64
# Frames whose per-frame stage is computed at once: an hour-long video never holds its standardised features whole.
# Every chunk has this many rows (a short one is filled up), so its products have one shape (see window_logits).
FRAME_CHUNK = 512


class FrameStreams(Protocol):
    """The per-frame inputs of the model, stacked over one or many videos (a ``SplitData`` is one)."""

    visual: Tensor  # (N, Dv)
    audio: Tensor  # (N, Da)
    face_mask: Tensor  # (N,) bool
    audio_mask: Tensor  # (N,) bool


def _as_tensor(values: np.ndarray | Tensor, dtype: type | None = None) -> Tensor:
    """A CPU tensor of ``values``; read-only arrays (memory maps) are copied, as torch needs writable memory."""
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=dtype)
    return torch.from_numpy(array if array.flags.writeable else array.copy())


@dataclass(frozen=True)
class VideoFrames:
    """One video's frame streams, checked for matching lengths."""

    visual: Tensor  # (n, Dv)
    audio: Tensor  # (n, Da)
    face_mask: Tensor  # (n,) bool
    audio_mask: Tensor  # (n,) bool

    @classmethod
    def from_arrays(
        cls,
        visual: np.ndarray | Tensor,
        audio: np.ndarray | Tensor,
        face_mask: np.ndarray | Tensor,
        audio_mask: np.ndarray | Tensor,
    ) -> VideoFrames:
        """Build from arrays or tensors; shapes that do not describe one video of ``n >= 1`` frames are refused."""
        visual, audio = _as_tensor(visual), _as_tensor(audio)
        face_mask, audio_mask = _as_tensor(face_mask, bool), _as_tensor(audio_mask, bool)
        n = int(visual.shape[0]) if visual.ndim == 2 else -1
        if not (audio.ndim == 2 and audio.shape[0] == n and face_mask.shape == (n,) and audio_mask.shape == (n,)):
            raise InputError(
                f"expected visual [n, Dv], audio [n, Da], face_mask [n], audio_mask [n]; got {tuple(visual.shape)}, "
                f"{tuple(audio.shape)}, {tuple(face_mask.shape)}, {tuple(audio_mask.shape)}"
            )
        if n < 1:
            raise InputError("a video needs at least one frame")
        return cls(visual=visual, audio=audio, face_mask=face_mask, audio_mask=audio_mask)

    @property
    def n_frames(self) -> int:
        """Frames in the video."""
        return int(self.visual.shape[0])

    def window_index(self, window: int, stride: int) -> WindowIndex:
        """The windows over this one video."""
        return build_window_index([self.n_frames], window, stride)


def centred_per_video(frames: FrameStreams, lengths: np.ndarray, offsets: np.ndarray) -> tuple[Tensor, Tensor]:
    """Visual and audio features with each video's mean over its present frames subtracted (absent rows untouched).

    What a face embedding says about who the person is, and what a recording says about its room, is roughly constant
    over a video; removing it leaves the expression. Computed over the whole video, so it needs the whole video.
    """
    centred = []
    for features, present in ((frames.visual, frames.face_mask), (frames.audio, frames.audio_mask)):
        values = features.float().clone()
        for offset, length in zip(offsets.tolist(), lengths.tolist(), strict=True):
            rows = slice(offset, offset + length)
            mask = present[rows].bool()
            if mask.any():
                values[rows][mask] -= values[rows][mask].mean(dim=0)
        centred.append(values)
    return centred[0], centred[1]


def centred_split(data: SplitData) -> SplitData:
    """``data`` with each video's mean over its present frames subtracted from each stream (:func:`centred_per_video`
    over the split's own videos)."""
    visual, audio = centred_per_video(data, data.lengths, data.offsets)
    return replace(data, visual=visual, audio=audio)


def _model_view(model: FusionTransformer, frames: FrameStreams, index: WindowIndex) -> FrameStreams:
    """The frames as the model reads them: centred per video when its normalisation asks for it."""
    if model.config.normalisation != "video":
        return frames
    visual, audio = centred_per_video(frames, index.lengths, index.offsets)
    return VideoFrames(visual=visual, audio=audio, face_mask=frames.face_mask, audio_mask=frames.audio_mask)


def filled_pass(ids: np.ndarray, size: int) -> np.ndarray:
    """``ids`` filled up to ``size`` with copies of the last: every pass of the model has one shape (the copies'
    results are dropped; see :func:`window_logits`)."""
    return np.concatenate([ids, np.full(size - ids.size, ids[-1], dtype=ids.dtype)])


@torch.no_grad()
def frame_stage_rows(
    model: FusionTransformer, frames: FrameStreams, device: torch.device, precision: str = "auto"
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The model's per-frame stage (:meth:`~exprfusion.model.fusion_transformer.FusionTransformer.frame_stage`) of
    every frame, computed :data:`FRAME_CHUNK` frames at a time, and the row a padding position of a window gets
    (no face, no audio, no flags).

    Returns:
        ``(rows, padding)``: each output's ``(N, ...)`` rows on ``device``, and its one padding row.
    """
    n_frames = int(frames.visual.shape[0])
    parts: list[dict[str, Tensor]] = []
    for start in range(0, n_frames, FRAME_CHUNK):
        rows = torch.from_numpy(filled_pass(np.arange(start, min(start + FRAME_CHUNK, n_frames)), FRAME_CHUNK))
        inputs = (frames.visual[rows], frames.audio[rows], frames.face_mask[rows], frames.audio_mask[rows])
        with autocast_for(device, precision):
            outputs = model.frame_stage(*(tensor.to(device) for tensor in inputs))
        parts.append({name: values[: n_frames - start] for name, values in outputs.items()})
    stacked = parts[0] if len(parts) == 1 else {name: torch.cat([part[name] for part in parts]) for name in parts[0]}
    nothing = torch.zeros(1, dtype=torch.bool, device=device)
    blank = [
        torch.zeros(1, int(stream.shape[1]), dtype=stream.dtype, device=device)
        for stream in (frames.visual, frames.audio)
    ]
    with autocast_for(device, precision):
        padding = {name: values[0] for name, values in model.frame_stage(*blank, nothing, nothing).items()}
    return stacked, padding


@torch.no_grad()
def window_logits(
    model: FusionTransformer,
    frames: FrameStreams,
    index: WindowIndex,
    batch_size: int = INFERENCE_BATCH_SIZE,
    precision: str = "auto",
) -> np.ndarray:
    """Logits of every window of ``index`` over ``frames``, as float32 ``(W, window, C)``.

    The model's per-frame stage runs once per frame (:func:`frame_stage_rows`, a bounded number of frames at a
    time); its rows are then gathered into windows, ``batch_size`` at a time, for the rest of the model. A frame
    held by two windows is standardised and projected once, and no window's raw features are ever gathered.

    ``precision`` is the autocast of the forward passes (:func:`~exprfusion.core.devices.autocast_for`): ``auto``
    (bf16 where the device computes it natively), ``fp32`` or ``bf16``.

    Every pass has one shape: :data:`FRAME_CHUNK` frames through the per-frame stage, ``batch_size`` windows through
    the rest (a shorter last pass is filled up with copies of its last window, whose logits are dropped). A matrix
    product's kernel, and so its rounding, depends on the product's shape: on a CPU with AMX the bf16 logits of a
    window differ in the last bits between a pass of 2 windows and one of 64. With one shape for every pass, a
    frame's or a window's result does not depend on which others share its pass, so a stream that computes its
    windows a few at a time gets the offline logits bit for bit, in every precision.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    frames = _model_view(model, frames, index)
    stage, padding = frame_stage_rows(model, frames, device, precision)
    rows = torch.from_numpy(index.rows).to(device)
    valid = torch.from_numpy(index.valid).to(device)
    face_mask, audio_mask = frames.face_mask.to(device), frames.audio_mask.to(device)
    outputs = []
    for batch_ids in window_batches(index.n_windows, batch_size):
        real = batch_ids.size
        ids = torch.from_numpy(filled_pass(batch_ids, batch_size)).to(device)
        batch_rows, batch_valid = rows[ids], valid[ids]
        windows = {
            name: torch.where(batch_valid[..., None], values[batch_rows], padding[name])
            for name, values in stage.items()
        }
        masks = (face_mask[batch_rows] & batch_valid, audio_mask[batch_rows] & batch_valid)
        with autocast_for(device, precision):
            logits = model.window_stage(windows, *masks)
        outputs.append(logits[:real].float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(outputs)


def predict_frames(
    model: FusionTransformer,
    frames: FrameStreams,
    index: WindowIndex,
    median_kernel: int,
    batch_size: int = INFERENCE_BATCH_SIZE,
    precision: str = "auto",
) -> FramePrediction:
    """Overlapping windows → per-frame logit soft voting → argmax → median filter inside each video."""
    return vote_and_filter(window_logits(model, frames, index, batch_size, precision), index, median_kernel)


def predict_split(
    model: FusionTransformer,
    data: FrameStreams,
    inference: InferenceSettings,
    batch_size: int = INFERENCE_BATCH_SIZE,
    precision: str = "auto",
) -> FramePrediction:
    """The served pipeline over every video of a stacked split (``data`` has ``window_index``)."""
    index = data.window_index(inference.window, inference.stride)
    return predict_frames(model, data, index, inference.median_kernel, batch_size, precision)


def single_pass_labels(
    model: FusionTransformer,
    data: FrameStreams,
    window: int,
    batch_size: int = INFERENCE_BATCH_SIZE,
    precision: str = "auto",
) -> np.ndarray:
    """One prediction per frame from non-overlapping windows: no voting, no median filter."""
    index = data.window_index(window, window)
    logits = window_logits(model, data, index, batch_size, precision)
    # Non-overlapping windows cover each frame once (the last, end-aligned window may overlap: voting settles it).
    return soft_vote(logits, index.rows, index.valid, index.n_rows).argmax(axis=1)
