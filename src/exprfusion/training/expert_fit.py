"""The linear experts' fits outside gradient descent, and their scores at other weights.

Both experts are fitted before training: the baseline's logistic regression, inside the model. The fit reads the
model's own standardised streams (so the expert sees at inference exactly what it was fitted on), draws the
baseline's stratified, seeded sample of labelled frames with the expert's input, and runs scikit-learn's L-BFGS with
the baseline's penalty and balanced class weights on one BLAS thread (exprfusion.evaluation.baseline explains why
one). :func:`score_expert_weights` scores a model at other expert weights (benchmarks/lever_probe.py).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from exprfusion.data.split_tensors import SplitData
from exprfusion.evaluation.baseline import BaselineConfig, sample_rows, side_by_side_fits
from exprfusion.evaluation.scoring import score_split
from exprfusion.inference.window_logits import INFERENCE_BATCH_SIZE
from exprfusion.model.artifact import InferenceSettings
from exprfusion.model.fusion_transformer import FusionTransformer

ABSENT_CLASS_BIAS = -30.0  # the logit bias of a class no training frame had: never predicted


# The baseline's settings, with fewer iterations for the joint expert: on `default` and `realistic` 100 gave the same
# validation scores as 200 (±0.008), at half the cost of a fit on both 1024-d streams.
EXPERT_FITS: dict[str, BaselineConfig] = {"joint": BaselineConfig(max_iter=100), "audio": BaselineConfig()}
_FIT_CACHE: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
_FIT_CACHE_SIZE = 8  # fits kept per process: a search's trials share the data, standardisation and settings


def fit_linear_experts(model: FusionTransformer, train: SplitData, config: BaselineConfig | None = None) -> None:
    """Fit each of ``model``'s fitted experts (``LinearExperts.fitted``) on ``train``'s labelled frames, in place.

    ``config`` replaces every expert's own settings (``EXPERT_FITS``) when given.

    The expert's input is built from the model's own standardised streams, on the baseline's stratified, seeded
    sample of the labelled frames where that input exists. A class no sampled frame has gets weight 0 and the bias
    ``ABSENT_CLASS_BIAS``. Fits are remembered per process by a digest of what they read (sample, standardisation,
    settings), so the trials of a search, which a Ray worker runs one after another, fit each expert once.
    """
    experts = model.linear_experts
    if experts is None or not experts.fitted:
        return
    labels = train.labels.cpu().numpy()
    jobs = {}
    for name in experts.fitted:
        settings = config or EXPERT_FITS[name]
        present = experts.present(name, train.face_mask, train.audio_mask).cpu().numpy()
        rows = sample_rows(labels, present, settings)
        with torch.no_grad():
            visual = model.standardise(train.visual[rows][None], train.face_mask[rows][None], "visual")[0]
            audio = model.standardise(train.audio[rows][None], train.audio_mask[rows][None], "audio")[0]
            features, _ = experts.inputs(name, visual, audio, train.face_mask[rows], train.audio_mask[rows])
        features = features.float().cpu().numpy()
        jobs[name] = (_fit_key(name, features, labels[rows], settings), features, labels[rows], settings)

    def fit(name: str) -> tuple[np.ndarray, np.ndarray]:
        key, features, frame_labels, settings = jobs[name]
        if key not in _FIT_CACHE:
            _FIT_CACHE[key] = _balanced_logistic_fit(
                features, frame_labels, getattr(experts, name).out_features, settings
            )
        return _FIT_CACHE[key]

    with side_by_side_fits(len(jobs)) as pool:
        fitted = dict(zip(jobs, pool.map(fit, jobs), strict=True))
    for name, (weight, bias) in fitted.items():
        layer = getattr(experts, name)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(weight))
            layer.bias.copy_(torch.from_numpy(bias))
    while len(_FIT_CACHE) > _FIT_CACHE_SIZE:
        _FIT_CACHE.popitem(last=False)


def _fit_key(name: str, features: np.ndarray, labels: np.ndarray, config: BaselineConfig) -> str:
    digest = hashlib.sha256(f"{name}|{features.shape}|{config}".encode())
    digest.update(np.ascontiguousarray(features).tobytes())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()


def _balanced_logistic_fit(
    features: np.ndarray, labels: np.ndarray, n_classes: int, config: BaselineConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Weight ``[n_classes, dim]`` and bias ``[n_classes]`` of a class-balanced logistic regression (the baseline's
    settings); a class with no frame gets weight 0 and ``ABSENT_CLASS_BIAS``, a lone class bias 0. The caller limits
    the BLAS threads and filters the convergence warning."""
    weight = np.zeros((n_classes, features.shape[1]))
    bias = np.full(n_classes, ABSENT_CLASS_BIAS)
    classes = np.unique(labels)
    if classes.size == 1:  # one class only: it is always the answer
        bias[classes] = 0.0
    elif classes.size > 1:
        classifier = LogisticRegression(
            C=config.C, class_weight="balanced", max_iter=config.max_iter, tol=config.tol
        ).fit(features, labels)
        weight[classifier.classes_] = classifier.coef_
        bias[classifier.classes_] = classifier.intercept_
    return weight, bias


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
