"""Bootstrap intervals over videos: hand-computed cases, the vectorised path against a loop, pairing, reporting."""

from __future__ import annotations

import numpy as np
import pytest

from exprfusion.core.labels import CLASS_NAMES, NUM_CLASSES
from exprfusion.evaluation import metrics
from exprfusion.evaluation.uncertainty import (
    VideoBootstrap,
    add_intervals,
    draw_counts,
    draw_videos,
    interval_line,
    percentile_interval,
)
from exprfusion.tracking.metric_names import evaluation_metrics

# Video A: 4 labelled frames all right (classes 0 and 1) and one unlabelled; video B: 2 frames both wrong.
TRUTH_A, PRED_A = [0, 0, 1, 1, -1], [0, 0, 1, 1, 5]
TRUTH_B, PRED_B = [0, 1], [1, 0]


def _frames(videos):
    truth = np.concatenate([np.asarray(t) for t, _ in videos])
    labels = np.concatenate([np.asarray(p) for _, p in videos])
    return truth, labels, np.array([len(t) for t, _ in videos])


def _plain_macro_f1(pairs):
    """Macro-F1 over the 8 classes of (truth, prediction) pairs, counted by hand (unlabelled pairs skipped)."""
    total = 0.0
    for c in range(NUM_CLASSES):
        tp = sum(1 for t, p in pairs if t == c and p == c)
        fp = sum(1 for t, p in pairs if t >= 0 and t != c and p == c)
        fn = sum(1 for t, p in pairs if t == c and p != c)
        total += 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return total / NUM_CLASSES


def _plain_percentile(values, q):
    """The q-th percentile of ``values`` with linear interpolation between order statistics."""
    ordered = sorted(values)
    position = q / 100 * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (position - below) * (ordered[above] - ordered[below])


def test_two_videos_give_the_hand_computed_interval():
    # The resamples of two videos are AA, AB, BA, BB (each 1/4). AA: classes 0 and 1 perfect → 2/8. BB: nothing right
    # → 0. AB: class 0 has 2 hits, 1 false alarm (B's 1 read as 0), 1 miss → F1 4/6, class 1 alike → (4/3)/8 = 1/6.
    truth, labels, lengths = _frames([(TRUTH_A, PRED_A), (TRUTH_B, PRED_B)])
    bootstrap = VideoBootstrap(truth, lengths, resamples=1000, seed=0)
    samples = bootstrap.macro_f1(labels)
    drawn_a = (bootstrap.draws == 0).sum(axis=1)
    expected = np.select([drawn_a == 2, drawn_a == 1], [2 / 8, 1 / 6], 0.0)
    np.testing.assert_allclose(samples, expected, rtol=0, atol=1e-15)
    # Every kind of resample is drawn far more than 2.5 % of the time, so the tails are the extremes.
    assert bootstrap.interval(samples) == pytest.approx([0.0, 0.25], abs=1e-15)
    assert metrics.macro_f1(truth, labels) == pytest.approx(1 / 6), "the point estimate pools both videos"


def test_a_few_resamples_match_a_plain_python_reference():
    videos = [([0, 0, 1, 2, -1], [0, 1, 1, 2, 2]), ([3, 3, 0], [3, 0, 0]), ([2, 2, 2, 4], [2, 4, 2, 4])]
    truth, labels, lengths = _frames(videos)
    bootstrap = VideoBootstrap(truth, lengths, resamples=7, seed=3)
    draws = np.random.default_rng(3).integers(0, len(videos), size=(7, len(videos)))
    np.testing.assert_array_equal(bootstrap.draws, draws)
    reference = [
        _plain_macro_f1([pair for video in row for pair in zip(*videos[video], strict=True)]) for row in draws.tolist()
    ]
    samples = bootstrap.macro_f1(labels)
    np.testing.assert_allclose(samples, reference, rtol=0, atol=1e-15)
    lo, hi = bootstrap.interval(samples)
    assert lo == pytest.approx(_plain_percentile(reference, 2.5), abs=1e-15)
    assert hi == pytest.approx(_plain_percentile(reference, 97.5), abs=1e-15)


def _random_split(n_videos, seed, frames=(1, 80)):
    """Videos of random lengths whose accuracy differs from video to video; a few unlabelled frames, one video
    wholly unlabelled."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(*frames, size=n_videos)
    truth, labels = [], []
    for video, n in enumerate(lengths):
        t = rng.choice(NUM_CLASSES, size=n, p=[0.3, 0.05, 0.05, 0.05, 0.15, 0.2, 0.1, 0.1])
        right = rng.random(n) < rng.uniform(0.1, 0.9)
        p = np.where(right, t, rng.integers(0, NUM_CLASSES, size=n))
        t[rng.random(n) < 0.1] = -1
        if video == 1:
            t[:] = -1
        truth.append(t)
        labels.append(p)
    return np.concatenate(truth), np.concatenate(labels), lengths


def test_the_vectorised_resamples_equal_a_direct_loop():
    truth, labels, lengths = _random_split(12, seed=5)
    bootstrap = VideoBootstrap(truth, lengths, resamples=200, seed=7)
    np.testing.assert_array_equal(bootstrap.counts, draw_counts(draw_videos(12, 200, 7), 12))
    assert (bootstrap.counts.sum(axis=1) == 12).all()
    starts = np.concatenate([[0], np.cumsum(lengths)])
    confusions = bootstrap.confusions(labels)
    for row, drawn in enumerate(bootstrap.draws):
        rows = np.concatenate([np.arange(starts[v], starts[v + 1]) for v in drawn])
        np.testing.assert_array_equal(confusions[row], metrics.confusion(truth[rows], labels[rows]))
        assert bootstrap.macro_f1(labels)[row] == pytest.approx(metrics.macro_f1(truth[rows], labels[rows]), abs=1e-12)


def _width(truth, labels, lengths, seed=0):
    bootstrap = VideoBootstrap(truth, lengths, seed=seed)
    lo, hi = bootstrap.interval(bootstrap.macro_f1(labels))
    return hi - lo


def test_the_interval_widens_as_videos_are_removed():
    truth, labels, lengths = _random_split(80, seed=11, frames=(50, 150))
    widths = []
    for kept in (80, 20, 5):
        frames = int(lengths[:kept].sum())
        widths.append(_width(truth[:frames], labels[:frames], lengths[:kept]))
    assert widths[0] < widths[1] < widths[2]
    assert widths[1] > 1.5 * widths[0], "a quarter of the videos: about twice as wide"


def test_resampling_frames_instead_of_videos_would_be_too_narrow():
    # Videos differ in accuracy, so the frames of one video move together: treating each frame as its own video
    # (the frame bootstrap) understates the uncertainty.
    truth, labels, lengths = _random_split(30, seed=12, frames=(50, 150))
    per_frame = np.ones(truth.size, dtype=np.int64)
    assert _width(truth, labels, per_frame) < 0.6 * _width(truth, labels, lengths)


def _shared_difficulty(n_videos=40, seed=21):
    """A model and a baseline that err on the same videos: the model right whenever the baseline is, and a bit more."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(40, 120, size=n_videos)
    truth, model, baseline = [], [], []
    for n in lengths:
        t = rng.integers(0, NUM_CLASSES, size=n)
        ease, draw = rng.uniform(0.1, 0.8), rng.random(n)
        wrong = (t + 1) % NUM_CLASSES
        truth.append(t)
        model.append(np.where(draw < ease + 0.1, t, wrong))
        baseline.append(np.where(draw < ease, t, wrong))
    return np.concatenate(truth), np.concatenate(model), np.concatenate(baseline), lengths


def test_the_paired_margin_is_narrower_than_an_unpaired_difference():
    truth, model, baseline, lengths = _shared_difficulty()
    paired = VideoBootstrap(truth, lengths, seed=1)
    margin = paired.macro_f1(model) - paired.macro_f1(baseline)
    lo, hi = paired.interval(margin)
    assert lo > 0, "paired, the margin the model holds on every video is clearly positive"
    # Control: the same scores on independent resamples (the unpaired difference).
    other = VideoBootstrap(truth, lengths, seed=2)
    unpaired = percentile_interval(paired.macro_f1(model) - other.macro_f1(baseline))
    assert unpaired[0] < 0 < unpaired[1], "unpaired, the shared difficulty of the videos swamps the margin"
    assert hi - lo < 0.5 * (unpaired[1] - unpaired[0])


def _evaluation(truth, model, baseline, lengths):
    """A metrics dict shaped as evaluate_model's, from labels: the model and all three baselines."""
    served = metrics.evaluate_predictions(truth, model)
    base = {modality: metrics.macro_f1(truth, baseline) for modality in ("visual", "audio", "both")}
    return {
        "split": "validation",
        "n_videos": len(lengths),
        "macro_f1": served["macro_f1"],
        "accuracy": served["accuracy"],
        "macro_f1_voting": served["macro_f1"],
        "per_class_f1": served["per_class_f1"],
        "robustness": {"0.0": served["macro_f1"], "1.0": base["audio"]},
        "robustness_auc": (served["macro_f1"] + base["audio"]) / 2,
        "baseline": {
            **base,
            "compared_with": "visual",
            "reference_macro_f1": base["visual"],
            "margin": served["macro_f1"] - base["visual"],
            "beats_baseline": True,
            "audio_floor_margin": 0.0,
            "reaches_audio_floor": True,
        },
    }


def test_every_reported_score_gets_its_interval_beside_it():
    truth, model, baseline, lengths = _shared_difficulty()
    point = _evaluation(truth, model, baseline, lengths)
    bootstrap = VideoBootstrap(truth, lengths, seed=4)
    robustness = {"0.0": model, "1.0": baseline}
    out = add_intervals(
        point,
        bootstrap,
        {"macro_f1": model, "macro_f1_voting": model},
        robustness,
        dict.fromkeys(("visual", "audio", "both"), baseline),
    )
    keys = list(out)
    assert keys.index("macro_f1_ci") == keys.index("macro_f1") + 1
    assert "macro_f1_frame_ci" not in out, "no single pass scored, no interval"
    for key in ("macro_f1", "accuracy", "macro_f1_voting", "robustness_auc"):
        lo, hi = out[f"{key}_ci"]
        assert lo <= out[key] <= hi, key
    assert set(out["per_class_f1_ci"]) == set(CLASS_NAMES)
    assert out["robustness_ci"]["0.0"] == out["macro_f1_ci"]
    assert out["robustness_ci"]["1.0"] == out["baseline"]["audio_ci"]
    report = out["baseline"]
    assert report["reference_macro_f1_ci"] == report["visual_ci"]
    assert report["margin_ci"] == bootstrap.interval(bootstrap.macro_f1(model) - bootstrap.macro_f1(baseline))
    assert report["margin_ci"][0] > 0
    assert report["audio_floor_margin_ci"] == [0.0, 0.0], "the same labels on the same resamples"
    assert out["uncertainty"] == {
        "method": "percentile bootstrap over videos", "resamples": 1000, "videos": 40, "level": 0.95, "seed": 4,
    }  # fmt: skip
    assert point == _evaluation(truth, model, baseline, lengths), "the point estimates are left as they were"

    line = interval_line(out)
    lo, hi = report["margin_ci"]
    assert line.startswith(f"validation macro-F1 {out['macro_f1']:.4f} [{out['macro_f1_ci'][0]:.4f}, ")
    assert f"visual baseline {report['reference_macro_f1']:.4f} [" in line
    assert f"margin {report['margin']:+.4f} [{lo:+.4f}, {hi:+.4f}]" in line
    assert line.endswith("(95 % percentile bootstrap over videos: 40 videos, 1000 resamples)")
    assert interval_line(point) is None

    logged = evaluation_metrics(out)  # what the final training run logs: the documented headline set only
    assert logged == {
        "validation_macro_f1": out["macro_f1"],
        "validation_macro_f1_lo": out["macro_f1_ci"][0],
        "validation_macro_f1_hi": out["macro_f1_ci"][1],
        "baseline_macro_f1": report["reference_macro_f1"],
        "baseline_macro_f1_lo": report["reference_macro_f1_ci"][0],
        "baseline_macro_f1_hi": report["reference_macro_f1_ci"][1],
        "margin": report["margin"],
        "margin_lo": lo,
        "margin_hi": hi,
        "robustness_auc": out["robustness_auc"],
    }


def test_the_same_seed_gives_the_same_interval():
    truth, labels, lengths = _random_split(10, seed=3)
    first = VideoBootstrap(truth, lengths, seed=9)
    second = VideoBootstrap(truth, lengths, seed=9)
    assert first.interval(first.macro_f1(labels)) == second.interval(second.macro_f1(labels))
    third = VideoBootstrap(truth, lengths, seed=10)
    assert first.interval(first.macro_f1(labels)) != third.interval(third.macro_f1(labels))
