"""Challenge metrics over the 8 fixed labels, with ignored frames."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import f1_score

from exprfusion.core.labels import CLASS_NAMES
from exprfusion.evaluation.metrics import accuracy, confusion, evaluate_predictions, macro_f1, per_class_f1

# Frames 5 and 6 are ignored (-1). Scored frames: truth [0, 0, 1, 1, 4, 4], prediction [0, 1, 1, 1, 4, 0].
Y_TRUE = np.array([0, 0, 1, 1, 4, -1, -1, 4])
Y_PRED = np.array([0, 1, 1, 1, 4, 7, 3, 0])
# Neutral: TP 1, FP 1, FN 1 -> 0.5. Anger: TP 2, FP 1 -> 0.8. Happiness: TP 1, FN 1 -> 2/3. The 5 other
# classes, absent from truth and prediction, score 0 and still count in the mean over 8.
EXPECTED_F1 = {name: 0.0 for name in CLASS_NAMES} | {"Neutral": 0.5, "Anger": 0.8, "Happiness": 2 / 3}


def test_macro_f1_matches_hand_computation_and_sklearn() -> None:
    expected = (0.5 + 0.8 + 2 / 3) / 8
    assert macro_f1(Y_TRUE, Y_PRED) == pytest.approx(expected)
    scored = Y_TRUE != -1
    reference = f1_score(Y_TRUE[scored], Y_PRED[scored], labels=range(8), average="macro", zero_division=0)
    assert macro_f1(Y_TRUE, Y_PRED) == pytest.approx(reference)


def test_predictions_at_ignored_frames_do_not_count() -> None:
    other_pred = Y_PRED.copy()
    other_pred[Y_TRUE == -1] = [0, 2]
    assert macro_f1(Y_TRUE, other_pred) == macro_f1(Y_TRUE, Y_PRED)
    assert accuracy(Y_TRUE, other_pred) == accuracy(Y_TRUE, Y_PRED) == pytest.approx(4 / 6)


def test_per_class_f1_is_keyed_by_class_name() -> None:
    scores = per_class_f1(Y_TRUE, Y_PRED)
    assert list(scores) == list(CLASS_NAMES)
    assert scores == pytest.approx(EXPECTED_F1)


def test_confusion_is_eight_by_eight_over_labelled_frames() -> None:
    cm = confusion(Y_TRUE, Y_PRED)
    assert cm.shape == (8, 8) and cm.dtype == np.int64
    expected = np.zeros((8, 8), dtype=np.int64)
    expected[0, 0], expected[0, 1], expected[1, 1], expected[4, 4], expected[4, 0] = 1, 1, 2, 1, 1
    np.testing.assert_array_equal(cm, expected)


def test_evaluate_predictions_collects_every_metric() -> None:
    report = evaluate_predictions(Y_TRUE, Y_PRED)
    assert set(report) == {"accuracy", "macro_f1", "per_class_f1", "n_frames"}
    assert report["n_frames"] == 6
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["macro_f1"] == pytest.approx(macro_f1(Y_TRUE, Y_PRED))
    assert report["per_class_f1"] == pytest.approx(EXPECTED_F1)


def test_no_labelled_frame_scores_zero_without_warnings() -> None:
    y_true = np.full(4, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = evaluate_predictions(y_true, np.zeros(4))
        assert (macro_f1(y_true, np.zeros(4)), accuracy(y_true, np.zeros(4))) == (0.0, 0.0)
        assert confusion(y_true, np.zeros(4)).sum() == 0
    assert report == {
        "accuracy": 0.0,
        "macro_f1": 0.0,
        "per_class_f1": dict.fromkeys(CLASS_NAMES, 0.0),
        "n_frames": 0,
    }


def test_invalid_inputs_raise() -> None:
    with pytest.raises(ValueError):
        macro_f1(np.array([0, 1]), np.array([0]))
    with pytest.raises(ValueError):
        macro_f1(np.array([0, 8]), np.array([0, 1]))
    with pytest.raises(ValueError):
        accuracy(np.array([0, 1]), np.array([0, -1]))
