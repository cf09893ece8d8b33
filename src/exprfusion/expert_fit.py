"""Fitting the model's frozen audio expert before training: the audio baseline's logistic regression, inside the model.

The fit reads the model's own standardised audio (so the expert sees at inference exactly what it was fitted on),
draws the baseline's stratified, seeded sample of labelled frames with audio, and runs scikit-learn's L-BFGS with the
baseline's penalty and balanced class weights on one BLAS thread (exprfusion.baseline explains why one).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from exprfusion.baseline import BaselineConfig, sample_rows
from exprfusion.data import SplitData
from exprfusion.model import FusionTransformer

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
