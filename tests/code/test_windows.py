"""Windows over videos: starts, padding of short videos, the stacked multi-video index, batches."""

from __future__ import annotations

import numpy as np
import pytest

from exprfusion.data.windows import (
    build_window_index,
    window_batches,
    window_frame_indices,
    window_starts,
)


@pytest.mark.parametrize(
    ("n_frames", "expected"),
    [
        (10, [0, 3, 6]),  # 6 + 4 = 10: the grid reaches the end
        (11, [0, 3, 6, 7]),  # one more window aligned to the end
        (4, [0]),
        (3, [0]),  # shorter than the window: one padded window
    ],
)
def test_window_starts_hand_examples(n_frames: int, expected: list[int]) -> None:
    starts = window_starts(n_frames, window=4, stride=3)
    assert starts.dtype == np.int64
    np.testing.assert_array_equal(starts, expected)


@pytest.mark.parametrize("n_frames", [1, 2, 7, 8, 9, 63, 64, 65, 200, 1001])
@pytest.mark.parametrize(("window", "stride"), [(8, 8), (8, 3), (64, 32), (5, 1)])
def test_windows_cover_every_frame_and_stay_inside(n_frames: int, window: int, stride: int) -> None:
    indices, valid = window_frame_indices(n_frames, window, stride)
    assert indices.shape == valid.shape == (len(window_starts(n_frames, window, stride)), window)
    assert indices.min() == 0 and indices.max() == n_frames - 1
    np.testing.assert_array_equal(np.unique(indices[valid]), np.arange(n_frames))
    # Only a video shorter than the window has padding.
    assert valid.all() == (n_frames >= window)


def test_short_video_is_padded_with_its_last_frame() -> None:
    indices, valid = window_frame_indices(3, window=4, stride=2)
    np.testing.assert_array_equal(indices, [[0, 1, 2, 2]])
    np.testing.assert_array_equal(valid, [[True, True, True, False]])


@pytest.mark.parametrize(("n_frames", "window", "stride"), [(0, 4, 2), (10, 0, 1), (10, 4, 0), (10, 4, 5)])
def test_invalid_arguments_raise(n_frames: int, window: int, stride: int) -> None:
    with pytest.raises(ValueError):
        window_starts(n_frames, window, stride)


def test_build_window_index_maps_two_videos_to_global_rows() -> None:
    # Video 0 has 5 frames at rows 0..4, video 1 has 3 frames at rows 5..7.
    index = build_window_index([5, 3], window=4, stride=2)
    np.testing.assert_array_equal(index.video, [0, 0, 1])
    np.testing.assert_array_equal(index.start, [0, 1, 0])
    np.testing.assert_array_equal(index.rows, [[0, 1, 2, 3], [1, 2, 3, 4], [5, 6, 7, 7]])
    np.testing.assert_array_equal(index.valid, [[True] * 4, [True] * 4, [True, True, True, False]])
    assert (index.n_windows, index.window, index.n_rows) == (3, 4, 8)
    np.testing.assert_array_equal(index.windows_of_video(1), [2])


def test_build_window_index_honours_given_offsets() -> None:
    index = build_window_index([3, 5], window=4, stride=4, offsets=[10, 0])
    np.testing.assert_array_equal(index.rows, [[10, 11, 12, 12], [0, 1, 2, 3], [1, 2, 3, 4]])
    assert index.n_rows == 13


def test_build_window_index_matches_per_video_windows() -> None:
    lengths = np.random.default_rng(0).integers(1, 300, size=40)
    index = build_window_index(lengths, window=64, stride=24)
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    for video, n_frames in enumerate(lengths):
        ids = index.windows_of_video(video)
        indices, valid = window_frame_indices(int(n_frames), 64, 24)
        np.testing.assert_array_equal(index.start[ids], window_starts(int(n_frames), 64, 24))
        np.testing.assert_array_equal(index.rows[ids], indices + offsets[video])
        np.testing.assert_array_equal(index.valid[ids], valid)


def test_fancy_indexing_gathers_a_batch_of_windows() -> None:
    lengths = [7, 2, 9]
    stacked = np.arange(sum(lengths), dtype=np.float32)[:, None] * np.ones((1, 3), dtype=np.float32)
    index = build_window_index(lengths, window=4, stride=2)
    batch = np.array([0, index.windows_of_video(1)[0]])
    windows = stacked[index.rows[batch]]
    assert windows.shape == (2, 4, 3)
    np.testing.assert_array_equal(windows[1, :, 0], [7, 8, 8, 8])


def test_build_window_index_rejects_empty_videos() -> None:
    with pytest.raises(ValueError):
        build_window_index([4, 0], window=4, stride=2)


def test_window_batches_visit_every_window_once() -> None:
    ordered = list(window_batches(10, batch_size=4))
    assert [len(batch) for batch in ordered] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(ordered), np.arange(10))
    shuffled = np.concatenate(list(window_batches(10, batch_size=3, rng=np.random.default_rng(0))))
    np.testing.assert_array_equal(np.sort(shuffled), np.arange(10))
