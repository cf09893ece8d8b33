"""How much each modality, and temporal context, tells about the labels of a corpus.

A linear probe: per modality, standardise and project the features to a few principal components (fitted on
train), then fit a class-balanced logistic regression on train frames and score macro-F1 on validation frames.
It is run per frame and on features averaged over a centred window, for visual, audio, and both concatenated.
On the synthetic corpus it checks that the information is laid out as intended (visual > audio, fusion > visual,
context > single frames, rare classes hard but learnable); on real features it is a quick sanity baseline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from exprfusion.data.corpus import Corpus
from exprfusion.evaluation.metrics import macro_f1, per_class_f1

MODALITIES: tuple[str, ...] = ("visual", "audio")
_PCA_FIT_FRAMES = 20_000


def windowed_mean(values: np.ndarray, valid: np.ndarray, half_width: int) -> np.ndarray:
    """Mean of ``values`` over the valid frames within ``±half_width`` of each frame (the frame's own value where
    none of them is valid)."""
    weights = valid.astype(np.float64)
    padded = np.concatenate(([0.0], np.cumsum(weights)))
    sums = np.vstack((np.zeros((1, values.shape[1])), np.cumsum(values * weights[:, None], axis=0)))
    n = values.shape[0]
    low = np.clip(np.arange(n) - half_width, 0, n)
    high = np.clip(np.arange(n) + half_width + 1, 0, n)
    count = padded[high] - padded[low]
    mean = (sums[high] - sums[low]) / np.maximum(count, 1.0)[:, None]
    return np.where(count[:, None] > 0, mean, values).astype(np.float32)


def _valid_rows(record: Any, modality: str) -> np.ndarray:
    return np.asarray(record.face_mask if modality == "visual" else record.audio_mask, dtype=bool)


def _fit_projections(corpus: Corpus, videos: list[str], dim: int, rng: np.random.Generator) -> dict[str, Any]:
    """Per modality, a scaler + whitening PCA fitted on a sample of valid train frames."""
    total = int(corpus.manifest.loc[videos, "n_frames"].sum())
    keep = min(1.0, _PCA_FIT_FRAMES / max(total, 1))
    samples: dict[str, list[np.ndarray]] = {modality: [] for modality in MODALITIES}
    for video in videos:
        record = corpus.load(video)
        chosen = rng.random(record.n_frames) < keep
        for modality in MODALITIES:
            rows = np.flatnonzero(chosen & _valid_rows(record, modality))
            samples[modality].append(np.asarray(getattr(record, modality)[rows], dtype=np.float32))
    projections = {}
    for modality, parts in samples.items():
        data = np.concatenate(parts)
        if data.shape[0] < 2:  # e.g. a corpus without any audio
            data = np.zeros((2, getattr(corpus, f"{modality}_dim")), dtype=np.float32)
        scaler = StandardScaler().fit(data)
        pca = PCA(n_components=min(dim, *data.shape), whiten=True, random_state=0).fit(scaler.transform(data))
        projections[modality] = (scaler, pca)
    return projections


def _split_frames(
    corpus: Corpus, videos: list[str], projections: dict[str, Any], half_width: int, keep: float, rng
) -> dict[str, np.ndarray]:
    """Projected per-frame and windowed features and labels of a sample of the labelled frames of ``videos``."""
    parts: dict[str, list[np.ndarray]] = {"labels": []}
    for video in videos:
        record = corpus.load(video)
        labels = np.asarray(record.labels)
        rows = np.flatnonzero((labels >= 0) & (rng.random(record.n_frames) < keep))
        parts["labels"].append(labels[rows])
        for modality, (scaler, pca) in projections.items():
            valid = _valid_rows(record, modality)
            features = pca.transform(scaler.transform(np.asarray(getattr(record, modality), dtype=np.float32)))
            # Frames without a face / audio carry no evidence: the components' mean (0), not a learnable code.
            features[~valid] = 0.0
            window = windowed_mean(features, valid, half_width)
            parts.setdefault(modality, []).append(features[rows].astype(np.float32))
            parts.setdefault(f"{modality}_window", []).append(window[rows])
    return {key: np.concatenate(value) for key, value in parts.items()}


def _score(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> dict[str, Any]:
    model = LogisticRegression(max_iter=300, class_weight="balanced")
    model.fit(train_x, train_y)
    predicted = model.predict(test_x)
    return {"macro_f1": macro_f1(test_y, predicted), "per_class_f1": per_class_f1(test_y, predicted)}


def information_probe(
    corpus_root: str | Path,
    max_frames: int = 40_000,
    *,
    half_width: int = 15,
    pca_dim: int = 64,
    seed: int = 0,
) -> dict[str, Any]:
    """Validation macro-F1 of linear probes trained on train frames, per modality and with temporal context.

    Args:
        corpus_root: a corpus with train and validation videos.
        max_frames: at most about this many labelled frames are sampled per split.
        half_width: the windowed probes average features over ``±half_width`` frames (valid frames only).
        pca_dim: principal components kept per modality.
        seed: seed of the frame sampling.

    Returns:
        ``{"visual" | "audio" | "fused" | "visual_window" | "audio_window" | "fused_window":
        {"macro_f1": float, "per_class_f1": {class: float}}, "n_train_frames": int, "n_validation_frames": int}``;
        ``fused`` concatenates the visual and audio components.
    """
    # These fits are small: one BLAS thread is several times faster than many competing for busy cores.
    with threadpool_limits(limits=1):
        return _probe(Corpus(corpus_root), max_frames, half_width, pca_dim, seed)


def _probe(corpus: Corpus, max_frames: int, half_width: int, pca_dim: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    splits = {split: corpus.videos(split) for split in ("train", "validation")}
    if not splits["train"] or not splits["validation"]:
        raise ValueError(f"{corpus.root}: the probe needs train and validation videos")
    projections = _fit_projections(corpus, splits["train"], pca_dim, rng)
    data = {}
    for split, videos in splits.items():
        labelled = int(corpus.manifest.loc[videos, "n_labelled"].sum())
        data[split] = _split_frames(corpus, videos, projections, half_width, min(1.0, max_frames / labelled), rng)
    train, validation = data["train"], data["validation"]
    result: dict[str, Any] = {}
    for suffix in ("", "_window"):
        for name, parts in (("visual", ["visual"]), ("audio", ["audio"]), ("fused", ["visual", "audio"])):
            columns = [f"{part}{suffix}" for part in parts]
            result[f"{name}{suffix}"] = _score(
                np.hstack([train[c] for c in columns]),
                train["labels"],
                np.hstack([validation[c] for c in columns]),
                validation["labels"],
            )
    result["n_train_frames"] = int(train["labels"].size)
    result["n_validation_frames"] = int(validation["labels"].size)
    return result
