"""Soft voting of window logits, median filtering of labels, softmax."""

from __future__ import annotations

import numpy as np
import pytest

from exprfusion.data.windows import build_window_index, window_frame_indices
from exprfusion.inference.voting import median_filter_labels, soft_vote, softmax, vote_and_filter


def test_soft_vote_averages_overlapping_windows() -> None:
    rows = np.array([[0, 1, 2], [2, 3, 4]])
    valid = np.ones_like(rows, dtype=bool)
    logits = np.array(
        [
            [[1.0, 0.0], [2.0, 0.0], [4.0, 0.0]],
            [[0.0, 2.0], [0.0, 4.0], [0.0, 6.0]],
        ],
        dtype=np.float32,
    )
    frame_logits = soft_vote(logits, rows, valid, n_frames=5)
    assert frame_logits.dtype == np.float32
    # Frame 2 is in both windows: (4 + 0) / 2 and (0 + 2) / 2.
    np.testing.assert_array_equal(frame_logits, [[1, 0], [2, 0], [2, 1], [0, 4], [0, 6]])


def test_soft_vote_ignores_padding_and_leaves_uncovered_frames_at_zero() -> None:
    rows = np.array([[0, 1, 1]])
    valid = np.array([[True, True, False]])
    logits = np.array([[[1.0, 3.0], [5.0, 7.0], [1000.0, 1000.0]]])
    frame_logits = soft_vote(logits, rows, valid, n_frames=3)
    assert frame_logits.dtype == np.float64
    np.testing.assert_array_equal(frame_logits, [[1, 3], [5, 7], [0, 0]])


def test_soft_vote_on_a_stacked_split_equals_voting_per_video() -> None:
    rng = np.random.default_rng(0)
    lengths = [50, 7, 33]
    index = build_window_index(lengths, window=16, stride=5)
    logits = rng.normal(size=(index.n_windows, 16, 8)).astype(np.float32)
    stacked = soft_vote(logits, index.rows, index.valid, n_frames=index.n_rows)
    for video, n_frames in enumerate(lengths):
        ids = index.windows_of_video(video)
        indices, valid = window_frame_indices(n_frames, 16, 5)
        own = soft_vote(logits[ids], indices, valid, n_frames)
        first = index.offsets[video]
        np.testing.assert_allclose(stacked[first : first + n_frames], own, rtol=1e-6)


def test_soft_vote_rejects_rows_outside_the_video() -> None:
    with pytest.raises(ValueError):
        soft_vote(np.zeros((1, 2, 3)), np.array([[0, 4]]), np.ones((1, 2), dtype=bool), n_frames=4)
    with pytest.raises(ValueError):
        soft_vote(np.zeros((1, 2, 3)), np.array([[0, 1, 2]]), np.ones((1, 3), dtype=bool), n_frames=4)


def test_median_filter_removes_an_isolated_flip() -> None:
    filtered = median_filter_labels(np.array([0, 0, 1, 0, 0, 2, 2, 2]), kernel_size=3)
    assert filtered.dtype == np.int64
    np.testing.assert_array_equal(filtered, [0, 0, 0, 0, 0, 2, 2, 2])


def test_median_filter_repeats_edge_labels() -> None:
    # Nearest padding keeps the end labels; zero padding would turn the last 2 into 0.
    np.testing.assert_array_equal(median_filter_labels(np.array([1, 0, 0, 0, 2]), 3), [1, 0, 0, 0, 2])
    np.testing.assert_array_equal(median_filter_labels(np.array([3, 3, 0, 3, 3]), 5), [3, 3, 3, 3, 3])
    # A kernel longer than the sequence still works.
    np.testing.assert_array_equal(median_filter_labels(np.array([5, 1, 5]), 9), [5, 5, 5])


def test_median_filter_matches_a_direct_computation() -> None:
    labels = np.random.default_rng(3).integers(0, 8, size=200)
    kernel_size = 7
    padded = np.pad(labels, kernel_size // 2, mode="edge")
    expected = [np.sort(padded[i : i + kernel_size])[kernel_size // 2] for i in range(len(labels))]
    np.testing.assert_array_equal(median_filter_labels(labels, kernel_size), expected)


def test_median_filter_kernel_one_is_identity() -> None:
    labels = np.array([3, 1, 4, 1, 5, 0, 2, 6])
    np.testing.assert_array_equal(median_filter_labels(labels, 1), labels)
    assert median_filter_labels(np.array([], dtype=np.int64), 5).shape == (0,)


@pytest.mark.parametrize("kernel_size", [0, -3, 2, 4])
def test_median_filter_rejects_even_or_non_positive_kernels(kernel_size: int) -> None:
    with pytest.raises(ValueError):
        median_filter_labels(np.array([0, 1, 2]), kernel_size)


def test_softmax_is_stable_and_normalised() -> None:
    logits = np.array([[1000.0, 1000.0, 998.0], [0.0, np.log(3.0), 0.0]])
    probabilities = softmax(logits)
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0)
    np.testing.assert_allclose(probabilities[1], [0.2, 0.6, 0.2])
    np.testing.assert_allclose(softmax(logits.T, axis=0), probabilities.T)


def _two_video_index():
    """Video a: 6 frames, windows [0..3] and [2..5]; video b: 3 frames, one padded window; stacked back to back."""
    return build_window_index([6, 3], window=4, stride=2)


def test_vote_and_filter_votes_then_filters_inside_each_video() -> None:
    index = _two_video_index()
    np.testing.assert_array_equal(index.rows, [[0, 1, 2, 3], [2, 3, 4, 5], [6, 7, 8, 8]])
    logits = np.zeros((3, 4, 3))
    logits[:, :, 0] = 1.0
    # Video a, frame 3: window 0 says class 1 strongly (5), window 1 says class 0 (1): mean (1, 2.5, 0) → class 1,
    # an isolated flip the 3-frame median turns back to class 0.
    logits[0, 3, 1] = 5.0
    # Video b: frames 6 and 7 lean to class 2; frame 8 stays class 0; the padded position (repeat of 8) says class 1
    # loudly but takes no part in the vote.
    logits[2, 0, 2] = logits[2, 1, 2] = 3.0
    logits[2, 3, 1] = 50.0
    prediction = vote_and_filter(logits, index, median_kernel=3)
    # Hand-computed votes: frame 2 is seen by both windows of a (1, 0, 0) each → mean (1, 0, 0).
    np.testing.assert_allclose(prediction.frame_logits[3], [1.0, 2.5, 0.0])
    np.testing.assert_allclose(prediction.frame_logits[8], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(prediction.labels_voting, [0, 0, 0, 1, 0, 0, 2, 2, 0])
    # The median runs after the vote and inside each video: a's flip is removed; b's edge-padded median keeps
    # [2, 2, 0] (windows [2,2,2], [2,2,0], [2,0,0]) and does not see a's frames.
    np.testing.assert_array_equal(prediction.labels, [0, 0, 0, 0, 0, 0, 2, 2, 0])
    assert prediction.labels.dtype == np.int64


def test_vote_and_filter_with_kernel_one_keeps_the_voted_labels() -> None:
    index = _two_video_index()
    logits = np.random.default_rng(0).standard_normal((3, 4, 8))
    prediction = vote_and_filter(logits, index, median_kernel=1)
    np.testing.assert_array_equal(prediction.labels, prediction.labels_voting)
