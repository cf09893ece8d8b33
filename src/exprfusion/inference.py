"""Model inference over a whole split: window logits, soft voting, per-video median filtering."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from exprfusion.data import SplitData, gather_windows
from exprfusion.devices import autocast_for
from exprfusion.model import FusionTransformer
from exprfusion.voting import median_filter_labels, soft_vote
from exprfusion.windows import WindowIndex, window_batches


@torch.no_grad()
def window_logits(model: FusionTransformer, data: SplitData, index: WindowIndex, batch_size: int = 64) -> np.ndarray:
    """Logits of every window of ``index``, as float32 ``(W, window, C)``."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    rows = torch.from_numpy(index.rows).to(data.labels.device)
    valid = torch.from_numpy(index.valid).to(data.labels.device)
    outputs = []
    for batch_ids in window_batches(index.n_windows, batch_size):
        ids = torch.from_numpy(batch_ids).to(rows.device)
        batch = gather_windows(data, rows[ids], valid[ids])
        with autocast_for(device):
            logits = model(
                batch.visual.to(device), batch.audio.to(device), batch.face_mask.to(device), batch.audio_mask.to(device)
            )
        outputs.append(logits.float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(outputs)


@dataclass(frozen=True)
class SplitPrediction:
    """Per-frame predictions for a stacked split."""

    frame_logits: np.ndarray  # (N, C) soft-voted logits
    labels_voting: np.ndarray  # (N,) argmax of the voted logits
    labels: np.ndarray  # (N,) after the per-video median filter


def predict_split(
    model: FusionTransformer,
    data: SplitData,
    window: int,
    stride: int,
    median_kernel: int,
    batch_size: int = 64,
) -> SplitPrediction:
    """Overlapping windows → per-frame logit soft voting → argmax → median filter inside each video."""
    index = data.window_index(window, stride)
    logits = window_logits(model, data, index, batch_size)
    frame_logits = soft_vote(logits, index.rows, index.valid, data.n_frames)
    labels_voting = frame_logits.argmax(axis=1)
    labels = np.empty_like(labels_voting)
    for video in range(len(data.videos)):
        rows = data.video_rows(video)
        labels[rows] = median_filter_labels(labels_voting[rows], median_kernel)
    return SplitPrediction(frame_logits=frame_logits, labels_voting=labels_voting, labels=labels)


def single_pass_labels(model: FusionTransformer, data: SplitData, window: int, batch_size: int = 64) -> np.ndarray:
    """One prediction per frame from non-overlapping windows: no voting, no median filter."""
    index = data.window_index(window, window)
    logits = window_logits(model, data, index, batch_size)
    # Non-overlapping windows cover each frame once (the last, end-aligned window may overlap: voting settles it).
    return soft_vote(logits, index.rows, index.valid, data.n_frames).argmax(axis=1)
