"""The one way a model is scored on a labelled split: every score training, tuning, evaluation and the ablation use.

Three views of the same model tell where its score comes from: the served pipeline (overlapping windows, logit soft
voting, the median filter: ``macro_f1``), voting alone (``macro_f1_voting``) and, on request, one pass over
non-overlapping windows (``macro_f1_frame``). Robustness repeats the served pipeline with a growing share of the
face frames hidden in bursts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from exprfusion.core.errors import InputError
from exprfusion.data.split_tensors import SplitData
from exprfusion.evaluation.metrics import confusion, evaluate_predictions, macro_f1
from exprfusion.inference.voting import FramePrediction
from exprfusion.inference.window_logits import INFERENCE_BATCH_SIZE, predict_split, single_pass_labels
from exprfusion.model.artifact import InferenceSettings
from exprfusion.model.fusion_transformer import FusionTransformer


@dataclass(frozen=True)
class SplitScores:
    """A model's scores on a split, with the predictions they were computed from.

    ``metrics``: ``macro_f1``, ``accuracy``, ``macro_f1_voting``, ``per_class_f1`` (class name → F1), ``n_frames``
    (labelled frames scored) and, when a single pass was asked for, ``macro_f1_frame``.
    """

    metrics: dict[str, Any]
    confusion: np.ndarray  # (C, C) counts, row = true class
    prediction: FramePrediction
    single_pass: np.ndarray | None = None  # the single pass's labels per frame, when asked for


def scores_from_labels(
    truth: np.ndarray, prediction: FramePrediction, single_pass: np.ndarray | None = None
) -> SplitScores:
    """Score predicted labels against the truth (``-1`` frames ignored); no model involved."""
    served = evaluate_predictions(truth, prediction.labels)
    metrics: dict[str, Any] = {
        "macro_f1": served["macro_f1"],
        "accuracy": served["accuracy"],
        "macro_f1_voting": macro_f1(truth, prediction.labels_voting),
        "per_class_f1": served["per_class_f1"],
        "n_frames": served["n_frames"],
    }
    if single_pass is not None:
        metrics["macro_f1_frame"] = macro_f1(truth, single_pass)
    return SplitScores(
        metrics=metrics, confusion=confusion(truth, prediction.labels), prediction=prediction, single_pass=single_pass
    )


def score_split(
    model: FusionTransformer,
    data: SplitData,
    inference: InferenceSettings,
    *,
    single_pass: bool = False,
    batch_size: int = INFERENCE_BATCH_SIZE,
) -> SplitScores:
    """Every score of ``model`` on a labelled split, from one pass of the served pipeline (and one single pass).

    Args:
        model: the model (its device is used).
        data: the split, labels included.
        inference: window, stride and median kernel of the served pipeline.
        single_pass: also score one pass over non-overlapping windows (another inference over the split).
        batch_size: windows per forward pass.
    """
    prediction = predict_split(model, data, inference, batch_size)
    frame_labels = single_pass_labels(model, data, inference.window, batch_size) if single_pass else None
    return scores_from_labels(data.labels.cpu().numpy(), prediction, frame_labels)


def check_fractions(fractions: Sequence[float]) -> list[float]:
    """The robustness fractions, sorted and unique; each must lie in [0, 1]."""
    fractions = [float(f) for f in fractions]
    if not fractions or any(not 0.0 <= f <= 1.0 for f in fractions):
        raise InputError(f"robustness fractions must be a non-empty list of values in [0, 1], got {fractions}")
    return sorted(set(fractions))


def robustness_labels(
    model: FusionTransformer,
    data: SplitData,
    inference: InferenceSettings,
    fractions: Sequence[float],
    *,
    seed: int,
    unmasked: SplitScores | None = None,
    batch_size: int = INFERENCE_BATCH_SIZE,
    on_fraction: Callable[[], None] | None = None,
) -> dict[str, np.ndarray]:
    """The served pipeline's labels per frame with each fraction of the split's face frames hidden in bursts.

    Args:
        seed: seed of the hidden bursts (``SplitData.with_faces_masked``).
        unmasked: the split's scores without hidden faces, reused for fraction 0.
        on_fraction: called after each fraction (progress).

    Returns:
        ``{str(fraction): labels}`` in increasing fraction order.
    """
    labels = {}
    for fraction in check_fractions(fractions):
        if fraction == 0.0 and unmasked is not None:
            labels[str(fraction)] = unmasked.prediction.labels
        else:
            masked = data.with_faces_masked(fraction, seed)
            labels[str(fraction)] = predict_split(model, masked, inference, batch_size).labels
        if on_fraction:
            on_fraction()
    return labels


def robustness_scores(
    model: FusionTransformer,
    data: SplitData,
    inference: InferenceSettings,
    fractions: Sequence[float],
    *,
    seed: int,
    unmasked: SplitScores | None = None,
    batch_size: int = INFERENCE_BATCH_SIZE,
    on_fraction: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Macro-F1 of the served pipeline with each fraction of the split's face frames hidden in bursts.

    Arguments as :func:`robustness_labels`.

    Returns:
        ``{str(fraction): macro_f1}`` in increasing fraction order.
    """
    truth = data.labels.cpu().numpy()
    labels = robustness_labels(
        model,
        data,
        inference,
        fractions,
        seed=seed,
        unmasked=unmasked,
        batch_size=batch_size,
        on_fraction=on_fraction,
    )
    return {fraction: macro_f1(truth, predicted) for fraction, predicted in labels.items()}
