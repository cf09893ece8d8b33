"""Inference post-processing: sliding-window soft voting and median filtering of frame labels.

numpy only, so the service can turn window logits into frame labels without importing training code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from exprfusion.data.windows import WindowIndex


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax: the maximum is subtracted first so large logits do not overflow."""
    logits = np.asarray(logits)
    shifted = logits - np.max(logits, axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / np.sum(exp, axis=axis, keepdims=True)


def soft_vote(window_logits: np.ndarray, rows: np.ndarray, valid: np.ndarray, n_frames: int) -> np.ndarray:
    """Per-frame mean of the logits of every window covering the frame.

    Works for one video (``rows`` are frame indices, as from ``windows.window_frame_indices``) and for a whole
    stacked split (``rows`` from ``windows.build_window_index``, ``n_frames`` the number of stacked rows):
    windows never cross videos, so averaging by global row is the same as averaging per video.

    Args:
        window_logits: ``[W, window, C]`` logits of every window.
        rows: int ``[W, window]`` frame (row) index of each window position.
        valid: bool ``[W, window]``; padding positions (False) take no part in the vote.
        n_frames: number of output frames.

    Returns:
        ``[n_frames, C]`` averaged logits (float32, or float64 for float64 input). A frame covered by no
        window gets all-zero logits, which ``argmax`` maps to class 0; windows from ``windows`` cover every
        frame.
    """
    window_logits = np.asarray(window_logits)
    rows = np.asarray(rows)
    valid = np.asarray(valid, dtype=bool)
    if window_logits.ndim != 3 or rows.shape != window_logits.shape[:2] or valid.shape != rows.shape:
        raise ValueError(
            f"expected logits [W, window, C] with rows and valid [W, window]; got {window_logits.shape}, "
            f"{rows.shape}, {valid.shape}"
        )
    n_classes = window_logits.shape[2]
    voted_rows = rows[valid].astype(np.int64)
    if voted_rows.size and (voted_rows.min() < 0 or voted_rows.max() >= n_frames):
        raise ValueError(f"rows must lie in [0, {n_frames}), got [{voted_rows.min()}, {voted_rows.max()}]")
    # float64 sums keep float16/float32 logits exact however many windows overlap.
    voted_logits = window_logits[valid].astype(np.float64)  # [N, C]

    # One bincount over (row, class) pairs sums every class at once.
    flat_bins = (voted_rows[:, None] * n_classes + np.arange(n_classes)[None, :]).ravel()
    sums = np.bincount(flat_bins, weights=voted_logits.ravel(), minlength=n_frames * n_classes)
    sums = sums.reshape(n_frames, n_classes)
    counts = np.bincount(voted_rows, minlength=n_frames)
    mean = sums / np.maximum(counts, 1)[:, None]
    return mean.astype(np.result_type(window_logits.dtype, np.float32))


def median_filter_labels(labels: np.ndarray, kernel_size: int) -> np.ndarray:
    """Median filter over a sequence of integer class labels.

    Edges use 'nearest' padding (the first and last labels are repeated), so every window holds exactly
    ``kernel_size`` labels and the output is always the middle of the sorted window, an actual label of the
    window (the same as ``scipy.ndimage.median_filter(mode="nearest")``). Zero padding, as in
    ``scipy.signal.medfilt``, would pull the ends of every video towards class 0. The median is taken over
    class indices, as the public ABAW code does: it removes isolated flips between neighbouring segments.

    Args:
        labels: int ``[n]`` class labels.
        kernel_size: odd window length; 1 returns the labels unchanged.

    Returns:
        int64 ``[n]`` filtered labels.
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd integer >= 1, got {kernel_size}")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {labels.shape}")
    if kernel_size == 1 or labels.size == 0:
        return labels.copy()
    half = kernel_size // 2
    windows = sliding_window_view(np.pad(labels, half, mode="edge"), kernel_size)  # [n, kernel_size], no copy
    # partition finds the middle element without a full sort.
    return np.partition(windows, half, axis=-1)[:, half]


@dataclass(frozen=True)
class FramePrediction:
    """Per-frame predictions of one video or of a stacked split, at each step of the served pipeline."""

    frame_logits: np.ndarray  # (N, C) soft-voted logits
    labels_voting: np.ndarray  # (N,) argmax of the voted logits
    labels: np.ndarray  # (N,) after the median filter inside each video


def vote_and_filter(window_logits: np.ndarray, index: WindowIndex, median_kernel: int) -> FramePrediction:
    """Frame labels from window logits: soft vote, argmax, then the median filter inside each video.

    The one post-processing path: a single video is an index over one video, a split an index over many; windows
    never cross videos, and neither does the median filter.

    Args:
        window_logits: ``[W, window, C]`` logits of every window of ``index``.
        index: the windows (``windows.build_window_index``), with the videos' lengths and offsets.
        median_kernel: odd median-filter length in frames; 1 turns the filter off.

    Returns:
        The voted logits and the labels before and after the filter. Every frame gets a label, frames without a
        face or audio included (the model sees their neighbours); apply :func:`softmax` to ``frame_logits`` for
        probabilities.
    """
    frame_logits = soft_vote(window_logits, index.rows, index.valid, index.n_rows)
    labels_voting = np.argmax(frame_logits, axis=-1).astype(np.int64)
    labels = labels_voting.copy()
    for offset, length in zip(index.offsets, index.lengths, strict=True):
        rows = slice(int(offset), int(offset + length))
        labels[rows] = median_filter_labels(labels_voting[rows], median_kernel)
    return FramePrediction(frame_logits=frame_logits, labels_voting=labels_voting, labels=labels)
