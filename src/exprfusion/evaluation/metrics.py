"""The ABAW EXPR metrics: macro-F1 over the 8 fixed labels, accuracy, per-class F1, confusion matrix.

Frames labelled ``IGNORE_LABEL`` (-1) in the truth are excluded; the prediction at those frames does not
matter. Labels are fixed to 0..7, so a class absent from both truth and predictions scores F1 = 0 and still
counts in the macro mean, as in the challenge:
``f1_score(labels=range(8), average="macro", zero_division=0)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score

from exprfusion.core.labels import CLASS_NAMES, IGNORE_LABEL, NUM_CLASSES

_LABELS = list(range(NUM_CLASSES))


def _labelled_frames(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Truth and prediction at the frames whose truth is not ``IGNORE_LABEL``, after checking both."""
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} frames, y_pred has {y_pred.size}")
    labelled = y_true != IGNORE_LABEL
    y_true, y_pred = y_true[labelled], y_pred[labelled]
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        if values.size and (values.min() < 0 or values.max() >= NUM_CLASSES):
            raise ValueError(f"{name} holds labels outside 0..{NUM_CLASSES - 1} at labelled frames")
    return y_true, y_pred


def _per_class_f1_array(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    if y_true.size == 0:
        return np.zeros(NUM_CLASSES)
    scores = f1_score(y_true, y_pred, labels=_LABELS, average=None, zero_division=0)
    return np.asarray(scores, dtype=np.float64)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean of the 8 per-class F1 scores over labelled frames (the challenge metric); 0.0 without any."""
    return float(_per_class_f1_array(*_labelled_frames(y_true, y_pred)).mean())


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of labelled frames predicted correctly; 0.0 with no labelled frame."""
    y_true, y_pred = _labelled_frames(y_true, y_pred)
    return float(np.mean(y_true == y_pred)) if y_true.size else 0.0


def per_class_f1(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """F1 of each class over labelled frames, keyed by class name in label order."""
    scores = _per_class_f1_array(*_labelled_frames(y_true, y_pred))
    return {name: float(score) for name, score in zip(CLASS_NAMES, scores, strict=True)}


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """int64 ``[8, 8]`` counts over labelled frames: row = true class, column = predicted class."""
    y_true, y_pred = _labelled_frames(y_true, y_pred)
    if y_true.size == 0:
        return np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    return confusion_matrix(y_true, y_pred, labels=_LABELS).astype(np.int64)


def evaluate_predictions(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """All scalar metrics in one JSON-ready dict.

    Returns:
        ``{"accuracy": float, "macro_f1": float, "per_class_f1": {class name: float}, "n_frames": int}`` where
        ``n_frames`` counts the labelled frames scored.
    """
    y_true, y_pred = _labelled_frames(y_true, y_pred)
    scores = _per_class_f1_array(y_true, y_pred)
    return {
        "accuracy": float(np.mean(y_true == y_pred)) if y_true.size else 0.0,
        "macro_f1": float(scores.mean()),
        "per_class_f1": {name: float(score) for name, score in zip(CLASS_NAMES, scores, strict=True)},
        "n_frames": int(y_true.size),
    }


def class_shares(labels: np.ndarray, n_classes: int = NUM_CLASSES) -> list[float]:
    """Share of ``labels`` (predicted classes 0..n_classes-1) in each class; all zeros for an empty array."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64).ravel(), minlength=n_classes)[:n_classes]
    total = counts.sum()
    return (counts / total).tolist() if total else [0.0] * n_classes
