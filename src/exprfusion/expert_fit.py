"""The linear experts' fits outside gradient descent: the frozen audio expert, and the experts' weights.

The audio expert is fitted before training: the audio baseline's logistic regression, inside the model.
The fit reads the model's own standardised audio (so the expert sees at inference exactly what it was fitted on),
draws the baseline's stratified, seeded sample of labelled frames with audio, and runs scikit-learn's L-BFGS with the
baseline's penalty and balanced class weights on one BLAS thread (exprfusion.baseline explains why one).

After holdout selection, each expert's weight is calibrated on the holdout: how much an expert should count depends
on the corpus (on identity-dominated faces a balanced audio read is worth much more than on clean ones).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from exprfusion.artifact import InferenceSettings
from exprfusion.baseline import BaselineConfig, sample_rows
from exprfusion.data import SplitData
from exprfusion.inference import INFERENCE_BATCH_SIZE
from exprfusion.model import FusionTransformer
from exprfusion.scoring import score_split

ABSENT_CLASS_BIAS = -30.0  # the logit bias of a class no training frame had: never predicted


def fit_audio_expert(model: FusionTransformer, train: SplitData, config: BaselineConfig | None = None) -> None:
    """Fit ``model``'s audio expert (if it has one) on ``train``'s labelled frames with audio, in place."""
    experts = model.linear_experts
    if experts is None or experts.audio is None:
        return
    config = config or BaselineConfig()
    labels = train.labels.cpu().numpy()
    rows = sample_rows(labels, train.audio_mask.cpu().numpy(), config)
    n_classes = experts.audio.out_features
    weight = np.zeros((n_classes, experts.audio.in_features))
    bias = np.full(n_classes, ABSENT_CLASS_BIAS)
    classes = np.unique(labels[rows])
    if classes.size == 1:  # one class only: it is always the answer
        bias[classes] = 0.0
    elif classes.size > 1:
        with torch.no_grad():
            features = model.audio_standardiser(train.audio[rows].to(model.dtype)).float().cpu().numpy()
        # max_iter bounds the cost on purpose (as the baseline's): an unconverged fit is still a strong one.
        with threadpool_limits(limits=1), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            classifier = LogisticRegression(
                C=config.C, class_weight="balanced", max_iter=config.max_iter, tol=config.tol
            ).fit(features, labels[rows])
        weight[classifier.classes_] = classifier.coef_
        bias[classifier.classes_] = classifier.intercept_
    with torch.no_grad():
        experts.audio.weight.copy_(torch.from_numpy(weight))
        experts.audio.bias.copy_(torch.from_numpy(bias))


EXPERT_WEIGHT_SCALES: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)  # of each configured weight, tried on the holdout


@dataclass(frozen=True)
class ExpertCalibration:
    """The expert weights the holdout chose, and its macro-F1 at each candidate (``{name: {weight: score}}``)."""

    weights: dict[str, float]
    scores: dict[str, dict[float, float]]

    def summary(self) -> str:
        """One line for a console: each expert's chosen weight and the holdout's score there."""
        chosen = [
            f"{name} {weight:g} ({self.scores[name][weight]:.4f})"
            for name, weight in self.weights.items()
            if name in self.scores
        ]
        return "expert weights chosen on the holdout: " + ", ".join(chosen)


def score_expert_weights(
    model: FusionTransformer,
    name: str,
    data: SplitData,
    weights: Sequence[float],
    inference: InferenceSettings,
    batch_size: int = INFERENCE_BATCH_SIZE,
) -> dict[float, float]:
    """Macro-F1 (4 decimals) of ``model`` on ``data`` with the expert ``name`` at each of ``weights``; the expert's
    own weight is restored afterwards."""
    experts = model.linear_experts
    kept = experts.weights[name]
    scores = {}
    try:
        for weight in weights:
            experts.weights[name] = weight
            prediction = score_split(model, data, inference, batch_size=batch_size)
            scores[weight] = round(float(prediction.metrics["macro_f1"]), 4)
    finally:
        experts.weights[name] = kept
    return scores


def calibrate_expert_weights(
    model: FusionTransformer, holdout: SplitData, inference: InferenceSettings, batch_size: int
) -> ExpertCalibration | None:
    """Choose each built expert's weight among ``EXPERT_WEIGHT_SCALES`` × its configured weight, on the holdout.

    The joint expert's weight is scored on the holdout as it is; the audio expert's with every face hidden (it
    answers only faceless windows). Ties keep the smaller weight. The model's experts and config take the chosen
    weights; returns None (and changes nothing) for a model without experts. The validation split is never read.
    """
    experts = model.linear_experts
    if experts is None:
        return None
    inputs = {"joint": holdout, "audio": holdout.with_faces_masked(1.0, 0)}
    chosen, scores = dict(experts.weights), {}
    for name, configured in experts.weights.items():
        if configured <= 0:
            continue
        candidates = [configured * scale for scale in EXPERT_WEIGHT_SCALES]
        scores[name] = score_expert_weights(model, name, inputs[name], candidates, inference, batch_size)
        chosen[name] = max(scores[name], key=lambda weight: (scores[name][weight], -weight))
        experts.weights[name] = chosen[name]
    model.config = replace(model.config, joint_expert_weight=chosen["joint"], audio_expert_weight=chosen["audio"])
    return ExpertCalibration(weights=chosen, scores=scores)
