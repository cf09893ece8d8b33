"""Drift figures on hand-computed examples, and the service's sliding window against the offline computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from exprfusion.core.errors import InputError
from exprfusion.monitoring.drift import (
    PSI_EPSILON,
    PredictionWindow,
    class_counts,
    drift_report,
    js_distance,
    missing_rate,
    psi,
    reference_distribution,
)

UNIFORM = np.full(8, 1 / 8)


def one_hot(k: int) -> np.ndarray:
    values = np.zeros(8)
    values[k] = 1.0
    return values


def test_js_distance_is_zero_for_equal_and_one_for_disjoint_distributions():
    assert js_distance(UNIFORM, UNIFORM) == pytest.approx(0.0, abs=1e-12)
    assert js_distance(one_hot(0), one_hot(1)) == pytest.approx(1.0)


def test_js_distance_by_hand():
    # p = (1/2, 1/2, 0...), q = (1, 0, ...): m = (3/4, 1/4).
    # KL(p||m) = 1/2 log2(2/3) + 1/2 log2(2); KL(q||m) = log2(4/3); JSD = (KL(p||m) + KL(q||m)) / 2.
    divergence = (0.5 * math.log2(2 / 3) + 0.5 * math.log2(2) + math.log2(4 / 3)) / 2
    p = np.array([0.5, 0.5, 0, 0, 0, 0, 0, 0])
    assert js_distance(p, one_hot(0)) == pytest.approx(math.sqrt(divergence))  # the distance: √divergence
    assert js_distance(p, one_hot(0)) == pytest.approx(0.5579, abs=1e-4)


def test_psi_by_hand_with_the_epsilon_for_an_empty_class():
    p = np.array([0.5, 0.5, 0, 0, 0, 0, 0, 0])
    q = np.array([0.25, 0.25, 0.5, 0, 0, 0, 0, 0])
    # Classes 0 and 1: (0.5 − 0.25) ln 2 each; class 2: (ε − 0.5) ln(ε / 0.5); classes 3–7: ε on both sides, 0.
    expected = 2 * 0.25 * math.log(2) + (PSI_EPSILON - 0.5) * math.log(PSI_EPSILON / 0.5)
    assert psi(p, q) == pytest.approx(expected)
    assert psi(p, q) == pytest.approx(0.3466 + 4.2582, abs=1e-3)
    assert psi(q, p) == pytest.approx(expected)  # symmetric
    assert psi(q, q) == 0.0


def test_missing_rates_and_counts():
    assert missing_rate(np.array([True, False, False, True])) == 0.5
    assert math.isnan(missing_rate(np.zeros(0, dtype=bool)))
    assert class_counts(np.array([0, 7, 7, 3])).tolist() == [1, 0, 0, 1, 0, 0, 0, 2]


def test_reference_is_checked_and_normalised():
    assert reference_distribution([2, 2, 0, 0, 0, 0, 0, 4]).tolist() == [0.25, 0.25, 0, 0, 0, 0, 0, 0.5]
    for bad in ([0.5, 0.5], [-0.1, *[0.1] * 7], [math.nan, *[0.1] * 7], [0] * 8):
        with pytest.raises(InputError, match="reference distribution"):
            reference_distribution(bad)


def test_window_keeps_the_last_frames_only():
    window = PredictionWindow(4)
    window.append(np.array([0, 1, 2]), face_mask=np.array([False, True, True]))
    window.append(np.array([3, 3]), audio_mask=np.array([False, True]))
    # Frames held: 1, 2, 3, 3 (the 0 with no face left); one of them has no audio.
    assert len(window) == 4
    assert window.counts().tolist() == [0, 1, 1, 2, 0, 0, 0, 0]
    report = window.report(UNIFORM)
    assert report.n_frames == 4
    assert report.missing_face_rate == 0.0
    assert report.missing_audio_rate == 0.25
    assert report.distribution.tolist() == [0, 0.25, 0.25, 0.5, 0, 0, 0, 0]
    window.append(np.arange(8))  # longer than the window: only 4, 5, 6, 7 stay
    assert window.counts().tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert window.report(UNIFORM).missing_audio_rate == 0.0


def test_window_report_by_hand():
    window = PredictionWindow(10)
    window.append(np.array([0, 0, 1, 1]))
    report = window.report(one_hot(0))
    expected_js = math.sqrt((0.5 * math.log2(2 / 3) + 0.5 * math.log2(2) + math.log2(4 / 3)) / 2)
    assert report.js_distance == pytest.approx(expected_js)
    expected_psi = (0.5 - 1.0) * math.log(0.5 / 1.0) + (0.5 - PSI_EPSILON) * math.log(0.5 / PSI_EPSILON)
    assert report.psi == pytest.approx(expected_psi)


def test_empty_window_reports_nan():
    report = PredictionWindow(5).report(UNIFORM)
    assert report.n_frames == 0 and report.counts.tolist() == [0] * 8
    assert all(math.isnan(v) for v in (report.js_distance, report.psi, report.missing_face_rate))


@pytest.mark.parametrize("length", [1, 7, 100, 5000])
def test_service_window_equals_the_offline_figure(length):
    rng = np.random.default_rng(length)
    n = 3000
    labels = rng.choice(8, size=n, p=[0.3, 0.03, 0.02, 0.02, 0.16, 0.14, 0.05, 0.28])
    faces, audio = rng.random(n) > 0.1, rng.random(n) > 0.3
    reference = rng.dirichlet(np.ones(8))
    window = PredictionWindow(length)
    start = 0
    while start < n:  # chunks of every size, some longer than the window
        stop = min(n, start + int(rng.integers(1, 2 * length + 2)))
        window.append(labels[start:stop], face_mask=faces[start:stop], audio_mask=audio[start:stop])
        start = stop
        served = window.report(reference)
        offline = drift_report(labels[:stop], reference, faces[:stop], audio[:stop], window=length)
        assert served.n_frames == offline.n_frames == min(stop, length)
        assert served.counts.tolist() == offline.counts.tolist()
        assert served.js_distance == offline.js_distance
        assert served.psi == offline.psi
        assert served.missing_face_rate == offline.missing_face_rate
        assert served.missing_audio_rate == offline.missing_audio_rate
    # And the counts match a plain recount of the last `length` frames.
    assert window.counts().tolist() == np.bincount(labels[-length:], minlength=8).tolist()


def test_bad_input_is_an_input_error():
    window = PredictionWindow(3)
    with pytest.raises(InputError, match="predicted label 8 at frame 1"):
        window.append(np.array([0, 8]))
    with pytest.raises(InputError, match="face_mask has shape"):
        window.append(np.array([0, 1]), face_mask=np.array([True]))
    with pytest.raises(InputError, match="integers"):
        drift_report(np.array([0.5]), UNIFORM)
    for length in (0, -1, 2.5):
        with pytest.raises(InputError, match="window length"):
            PredictionWindow(length)
    assert len(window) == 0, "a rejected chunk leaves the window as it was"
