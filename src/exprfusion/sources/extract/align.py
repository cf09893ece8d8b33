"""Align feature sequences of another rate (audio: 50 frames/s for WavLM) to a video's own frames."""

from __future__ import annotations

import numpy as np

ALIGN_METHODS = ("nearest", "linear")


def source_indices(n_source: int, n_frames: int) -> np.ndarray:
    """For each video frame i, the source row ``int(i * n_source / n_frames)`` (the public Aff-Wild2 rule)."""
    if n_source <= 0 or n_frames <= 0:
        raise ValueError(f"cannot align {n_source} source rows to {n_frames} frames")
    return (np.arange(n_frames, dtype=np.int64) * n_source) // n_frames


def align_to_frames(features: np.ndarray, n_frames: int, method: str = "nearest") -> np.ndarray:
    """Resample ``features`` ``[n_source, D]`` to ``[n_frames, D]`` by each video's own frame count.

    Args:
        features: source sequence, e.g. WavLM frames at 50 per second.
        n_frames: number of video frames to align to.
        method: ``"nearest"`` (row ``int(i * n_source / n_frames)``) or ``"linear"`` (interpolation between the
            two source rows around the frame's position on the same time axis).

    Returns:
        Array ``[n_frames, D]`` of the input's dtype.
    """
    if method not in ALIGN_METHODS:
        raise ValueError(f"unknown alignment method {method!r}; expected one of {ALIGN_METHODS}")
    n_source = features.shape[0]
    if n_source == n_frames:
        return np.asarray(features)
    if method == "nearest":
        return np.asarray(features)[source_indices(n_source, n_frames)]
    position = np.arange(n_frames, dtype=np.float64) * n_source / n_frames
    lower = np.minimum(np.floor(position).astype(np.int64), n_source - 1)
    upper = np.minimum(lower + 1, n_source - 1)
    weight = (position - lower)[:, None]
    source = np.asarray(features, dtype=np.float32)
    aligned = (1.0 - weight) * source[lower] + weight * source[upper]
    return aligned.astype(features.dtype)


def align_at_times(features: np.ndarray, frame_times: np.ndarray, rate: float, method: str = "nearest") -> np.ndarray:
    """Resample ``features`` ``[n_rows, D]``, row ``j`` describing the instant ``j / rate``, to frames shown at times.

    This is how media extraction aligns: the speech model's row ``j`` is centred on second ``j / rate`` of the
    video's own timeline (second 0 is the first frame), and frame ``i`` is shown at ``frame_times[i]`` seconds.

    Args:
        features: the feature rows, e.g. WavLM at 50 per second.
        frame_times: presentation time of each video frame in seconds, ``[n_frames]``.
        rate: rows per second.
        method: ``"nearest"`` (the row centred closest to the frame: ``round(t * rate)``) or ``"linear"``
            (interpolation between the two rows around ``t * rate``). Frames past the last row take the last row.

    Returns:
        Array ``[n_frames, D]`` of the input's dtype.
    """
    if method not in ALIGN_METHODS:
        raise ValueError(f"unknown alignment method {method!r}; expected one of {ALIGN_METHODS}")
    n_source = features.shape[0]
    if n_source <= 0 or rate <= 0:
        raise ValueError(f"cannot align {n_source} rows at {rate} rows/s")
    position = np.maximum(np.asarray(frame_times, dtype=np.float64) * rate, 0.0)
    if method == "nearest":
        # floor(x + 0.5): halves round up, the same on every platform (np.round rounds halves to even)
        return np.asarray(features)[np.minimum(np.floor(position + 0.5).astype(np.int64), n_source - 1)]
    lower = np.minimum(np.floor(position).astype(np.int64), n_source - 1)
    upper = np.minimum(lower + 1, n_source - 1)
    weight = np.clip(position - lower, 0.0, 1.0)[:, None]
    source = np.asarray(features, dtype=np.float32)
    aligned = (1.0 - weight) * source[lower] + weight * source[upper]
    return aligned.astype(features.dtype)
