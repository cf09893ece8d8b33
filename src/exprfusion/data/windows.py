"""Fixed-length windows with a stride over videos, for training and inference.

A window is ``window`` consecutive frames of one video. Starts follow the grid ``0, stride, 2*stride, …``;
when the grid does not reach the end of the video one more window is aligned to the end, so every frame is
covered by at least one window. A video shorter than the window gets one window at start 0 whose tail is
padding: its indices repeat the last frame and ``valid`` is False there, so losses and votes can ignore it.

A split is stacked as one contiguous array (video ``v`` occupies rows
``offsets[v] .. offsets[v] + lengths[v]``); :func:`build_window_index` turns that layout into arrays of global
row indices, so a batch of windows is gathered with one fancy-indexing call:
``stacked_features[index.rows[batch]]``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from exprfusion.core.errors import InputError


def _check_window_and_stride(window: int, stride: int) -> None:
    if window < 1:
        raise InputError(f"window must be >= 1, got {window}")
    if not 1 <= stride <= window:
        # A stride larger than the window would leave frames covered by no window.
        raise InputError(f"stride must be in [1, window={window}], got {stride}")


def window_starts(n_frames: int, window: int, stride: int) -> np.ndarray:
    """Start frame of every window over a video of ``n_frames`` frames.

    Args:
        n_frames: number of frames in the video (>= 1).
        window: frames per window.
        stride: frames between consecutive starts (1 <= stride <= window).

    Returns:
        int64 array of starts ``0, stride, 2*stride, …``, plus ``n_frames - window`` when the grid does not
        reach the last frame; ``[0]`` for videos no longer than the window.
    """
    _check_window_and_stride(window, stride)
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    last_start = max(n_frames - window, 0)
    starts = np.arange(0, last_start + 1, stride, dtype=np.int64)
    if starts[-1] != last_start:
        starts = np.append(starts, np.int64(last_start))
    return starts


def window_frame_indices(n_frames: int, window: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices of every window over one video.

    Returns:
        ``(indices, valid)``: int64 ``[n_windows, window]`` frame indices, clipped to ``n_frames - 1`` where a
        short video is padded, and bool ``[n_windows, window]`` that is False on those padding positions.
    """
    starts = window_starts(n_frames, window, stride)
    indices = starts[:, None] + np.arange(window, dtype=np.int64)[None, :]
    valid = indices < n_frames
    return np.minimum(indices, n_frames - 1), valid


@dataclass(frozen=True)
class WindowIndex:
    """Every window of every video of a split stacked as one contiguous array.

    Attributes:
        video: int64 ``[W]`` position of the window's video in ``lengths``.
        start: int64 ``[W]`` start frame of the window within its video.
        rows: int64 ``[W, window]`` global row indices into the stacked array (padding repeats the video's
            last row).
        valid: bool ``[W, window]`` False on padding positions of videos shorter than the window.
        lengths: int64 ``[V]`` frames per video.
        offsets: int64 ``[V]`` first global row of each video.
    """

    video: np.ndarray
    start: np.ndarray
    rows: np.ndarray
    valid: np.ndarray
    lengths: np.ndarray
    offsets: np.ndarray

    @property
    def n_windows(self) -> int:
        """Number of windows over all videos."""
        return int(self.rows.shape[0])

    @property
    def window(self) -> int:
        """Frames per window."""
        return int(self.rows.shape[1])

    @property
    def n_rows(self) -> int:
        """Rows the stacked array must have: one past the last row of any video."""
        return int((self.offsets + self.lengths).max()) if len(self.lengths) else 0

    def windows_of_video(self, video: int) -> np.ndarray:
        """Ids of the windows of one video, in start order."""
        return np.flatnonzero(self.video == video)


def contiguous_offsets(lengths: Sequence[int] | np.ndarray) -> np.ndarray:
    """First row of each video when videos are stacked back to back in the given order."""
    lengths = np.asarray(lengths, dtype=np.int64)
    return np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64) if len(lengths) else lengths


def build_window_index(
    lengths: Sequence[int] | np.ndarray,
    window: int,
    stride: int,
    offsets: Sequence[int] | np.ndarray | None = None,
) -> WindowIndex:
    """Index every window of every video, with no loop over videos or frames.

    Per video the windows are exactly those of :func:`window_frame_indices`; windows never cross videos.

    Args:
        lengths: frames per video (each >= 1).
        window: frames per window.
        stride: frames between consecutive starts (1 <= stride <= window).
        offsets: first global row of each video; default stacks videos back to back in the given order.

    Returns:
        The :class:`WindowIndex`, windows ordered by video then start.
    """
    _check_window_and_stride(window, stride)
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.ndim != 1:
        raise ValueError("lengths must be one-dimensional")
    if np.any(lengths < 1):
        raise ValueError("every video needs at least one frame")
    offsets = contiguous_offsets(lengths) if offsets is None else np.asarray(offsets, dtype=np.int64)
    if offsets.shape != lengths.shape:
        raise ValueError(f"offsets shape {offsets.shape} differs from lengths shape {lengths.shape}")

    span = np.maximum(lengths - window, 0)  # last possible start per video
    n_grid = span // stride + 1
    needs_end_window = span % stride != 0
    counts = n_grid + needs_end_window

    video = np.repeat(np.arange(len(lengths), dtype=np.int64), counts)
    first_window = np.repeat(np.cumsum(counts) - counts, counts)
    rank = np.arange(len(video), dtype=np.int64) - first_window  # window number within its video
    start = np.where(rank < n_grid[video], rank * stride, span[video])

    frames = start[:, None] + np.arange(window, dtype=np.int64)[None, :]
    video_lengths = lengths[video][:, None]
    valid = frames < video_lengths
    rows = offsets[video][:, None] + np.minimum(frames, video_lengths - 1)
    return WindowIndex(video=video, start=start, rows=rows, valid=valid, lengths=lengths, offsets=offsets)


def window_batches(n_windows: int, batch_size: int, rng: np.random.Generator | None = None) -> Iterator[np.ndarray]:
    """Split window ids ``0 .. n_windows-1`` into batches that visit each window once.

    Ordered for inference (``rng=None``); shuffled, one epoch, for training when ``rng`` is given.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    ids = np.arange(n_windows, dtype=np.int64) if rng is None else rng.permutation(n_windows).astype(np.int64)
    for first in range(0, n_windows, batch_size):
        yield ids[first : first + batch_size]
