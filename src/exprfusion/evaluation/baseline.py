"""The reference every evaluation reports beside the model: per-frame logistic regression, smoothed over time.

HSEmotion's ABAW recipe, as a user would build it first: standardise each feature dimension on the training frames,
fit a multinomial logistic regression with balanced class weights per frame, then average the class probabilities
over ±``smoothing`` frames inside each video and take the argmax. One model per input:

- ``visual``: frames with a face;
- ``audio``: frames with audio;
- ``both``: the two standardised streams side by side, each zeroed where it is absent, plus a presence flag per
  modality (frames with either input).

Each stream is standardised on the training frames where it is present. A frame whose input is missing takes the
mean of its neighbours' probabilities within the ±``smoothing`` window, or the training class prior when no
neighbour has it.

The fit is kept cheap enough for every evaluation: float32 features, one stratified, seeded sample of at most
``max_train_frames`` labelled training frames (only those are read from the corpus), and an L2 penalty (``C``) strong
enough for L-BFGS to converge within a few dozen iterations on 1024-d features. Fitting and scoring run on one BLAS
thread: the matrices are small, and on a machine whose cores are shared, two threads made the fits several times
slower (they also shift the scores in the fourth decimal from one thread count to another). The README gives the
measured cost and the macro-F1 against a fit on every training frame.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import torch
from pydantic import Field
from scipy.ndimage import uniform_filter1d
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils import resample
from threadpoolctl import threadpool_limits

from exprfusion.core.errors import InputError
from exprfusion.core.labels import NUM_CLASSES
from exprfusion.core.settings import Flag, settings
from exprfusion.data.corpus import Corpus
from exprfusion.data.split_tensors import SplitData
from exprfusion.evaluation.metrics import macro_f1

MODALITIES: tuple[str, ...] = ("visual", "audio", "both")
_MASK_OF = {"visual": "face_mask", "audio": "audio_mask"}
_PREDICT_CHUNK = 8192  # frames standardised and scored at a time (bounds the float32 copies)

Frames = Mapping[str, np.ndarray]  # "visual", "audio", "face_mask", "audio_mask" (and "labels"), row-aligned


@settings(frozen=True)
class BaselineConfig:
    """Whether and how the baseline is fitted and smoothed (``evaluate.baseline`` in params.yaml)."""

    enabled: Flag = True  # evaluate fits and reports it
    smoothing: Annotated[int, Field(ge=0)] = 15  # frames on each side of the probability average
    # A stratified, seeded sample of the labelled training frames beyond this many.
    max_train_frames: Annotated[int, Field(ge=2)] = 20_000
    C: Annotated[float, Field(gt=0.0)] = 0.01  # inverse L2 strength (scikit-learn's C)
    max_iter: Annotated[int, Field(ge=1)] = 200  # L-BFGS iterations at most
    tol: Annotated[float, Field(gt=0.0)] = 1e-3
    seed: Annotated[int, Field(ge=0)] = 0  # of the training-frame sample


@dataclass(frozen=True)
class TrainingFrames:
    """The labelled training frames a baseline is fitted on (a sample), and the class prior of all of them."""

    frames: dict[str, np.ndarray]  # visual, audio (float16), face_mask, audio_mask (bool), labels (int64)
    prior: np.ndarray  # (8,) class shares of every labelled training frame


def present(frames: Frames, modality: str) -> np.ndarray:
    """Bool per frame: the input of ``modality`` exists (``both``: a face or audio)."""
    if modality not in MODALITIES:
        raise ValueError(f"baseline modality must be one of {MODALITIES}, got {modality!r}")
    face, audio = frames["face_mask"], frames["audio_mask"]
    return {"visual": face, "audio": audio, "both": face | audio}[modality]


def fit_threads(jobs: int) -> int:
    """How many independent fits to run side by side (each on one BLAS thread): as many as the threads torch may
    use here, so that a Ray trial given one CPU fits one at a time."""
    return max(1, min(jobs, torch.get_num_threads()))


@contextmanager
def side_by_side_fits(jobs: int) -> Iterator[ThreadPoolExecutor]:
    """A thread pool for ``jobs`` independent fits, each on one BLAS thread, with ConvergenceWarning off.

    The thread limit and the warning filter are set around the pool (``catch_warnings`` is not thread-safe), so no
    fit's exit lifts them under another: the same numbers as one fit after another, sooner where there are cores to
    use. ``max_iter`` bounds a fit's cost on purpose: an unconverged fit is still a strong one.
    """
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with ThreadPoolExecutor(max_workers=fit_threads(jobs)) as pool:
            yield pool


def _streams(modality: str) -> tuple[str, ...]:
    return ("visual", "audio") if modality == "both" else (modality,)


def _prior(labels: np.ndarray) -> np.ndarray:
    counts = np.bincount(labels[labels >= 0], minlength=NUM_CLASSES).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def sample_rows(labels: np.ndarray, usable: np.ndarray, config: BaselineConfig) -> np.ndarray:
    """Sorted indices of the labelled ``usable`` frames: all, or a stratified sample of ``max_train_frames``."""
    rows = np.flatnonzero((labels >= 0) & usable)
    if rows.size <= config.max_train_frames:
        return rows
    sample = resample(
        rows, n_samples=config.max_train_frames, replace=False, stratify=labels[rows], random_state=config.seed
    )
    return np.sort(sample)


def _split_frames(data: SplitData, rows: np.ndarray | slice) -> dict[str, np.ndarray]:
    names = ("visual", "audio", "face_mask", "audio_mask", "labels")
    return {name: getattr(data, name)[rows].cpu().numpy() for name in names}


def sample_training_frames(train: SplitData, config: BaselineConfig) -> TrainingFrames:
    """The training sample drawn from a split already in memory (one sample shared by the three baselines)."""
    labels = train.labels.cpu().numpy()
    usable = (train.face_mask | train.audio_mask).cpu().numpy()
    rows = sample_rows(labels, usable, config)
    return TrainingFrames(frames=_split_frames(train, rows), prior=_prior(labels))


def load_training_frames(corpus: Corpus, config: BaselineConfig, split: str = "train") -> TrainingFrames:
    """The training sample read from the corpus: labels and masks of every frame, features of sampled frames only."""
    videos = corpus.videos(split)
    records = [corpus.load(video) for video in videos]  # memory-mapped features
    labels = np.concatenate([record.labels for record in records]) if records else np.empty(0, np.int64)
    if not (labels >= 0).any():
        raise InputError(
            f"{corpus.root}: the baseline is fitted on the {split!r} split, which has no labelled frames "
            "(set evaluate.baseline.enabled: false, or pass --no-baseline, to evaluate without it)"
        )
    usable = np.concatenate([record.face_mask | record.audio_mask for record in records])
    rows = sample_rows(labels, usable, config)
    starts = np.cumsum([0] + [record.n_frames for record in records])
    parts: dict[str, list[np.ndarray]] = {name: [] for name in ("visual", "audio", "face_mask", "audio_mask")}
    for record, start, end in zip(records, starts[:-1], starts[1:], strict=True):
        local = rows[(rows >= start) & (rows < end)] - start
        for name, chunks in parts.items():
            chunks.append(np.asarray(getattr(record, name)[local]))
    frames = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    return TrainingFrames(frames={**frames, "labels": labels[rows]}, prior=_prior(labels))


class _Design:
    """Standardised features of one input kind; each stream's scaler is fitted on the frames where it is present."""

    def __init__(self, frames: Frames, modality: str) -> None:
        self.modality = modality
        self.scalers = {
            stream: StandardScaler().fit(frames[stream][frames[_MASK_OF[stream]]].astype(np.float32))
            for stream in _streams(modality)
        }

    def matrix(self, frames: Frames) -> np.ndarray:
        """float32 design matrix: standardised features (0 where absent); for ``both``, presence flags too."""
        blocks = []
        for stream in _streams(self.modality):
            mask = frames[_MASK_OF[stream]][:, None]
            blocks.append(self.scalers[stream].transform(frames[stream].astype(np.float32)) * mask)
            if self.modality == "both":
                blocks.append(mask)
        return np.concatenate(blocks, axis=1, dtype=np.float32)


@dataclass
class FittedBaseline:
    """One fitted baseline: its design and classifier (None when there was nothing to fit) and the class prior."""

    modality: str
    design: _Design | None
    classifier: LogisticRegression | None
    prior: np.ndarray

    def frame_probabilities(self, data: SplitData) -> np.ndarray:
        """``[N, 8]`` per-frame class probabilities; NaN rows where the baseline's input is missing."""
        probabilities = np.full((data.n_frames, NUM_CLASSES), np.nan)
        if self.classifier is None or self.design is None:
            return probabilities
        masks = {name: getattr(data, name).cpu().numpy() for name in ("face_mask", "audio_mask")}
        rows = np.flatnonzero(present(masks, self.modality))  # the masks only: the features are read per chunk
        for start in range(0, rows.size, _PREDICT_CHUNK):
            chunk = rows[start : start + _PREDICT_CHUNK]
            scores = np.zeros((chunk.size, NUM_CLASSES))
            with threadpool_limits(limits=1):
                design = self.design.matrix(_split_frames(data, chunk))
                scores[:, self.classifier.classes_] = self.classifier.predict_proba(design)
            probabilities[chunk] = scores
        return probabilities

    def predict(self, data: SplitData, smoothing: int) -> np.ndarray:
        """Labels per frame: probabilities averaged over ±``smoothing`` frames inside each video, then argmax."""
        probabilities = self.frame_probabilities(data)
        labels = np.empty(data.n_frames, dtype=np.int64)
        for video in range(len(data.videos)):
            rows = data.video_rows(video)
            labels[rows] = smoothed_labels(probabilities[rows], smoothing, self.prior)
        return labels


def smoothed_labels(probabilities: np.ndarray, smoothing: int, prior: np.ndarray) -> np.ndarray:
    """Argmax of the mean probability over ±``smoothing`` frames, ignoring NaN rows (missing input).

    Edges repeat the first and last frame. A frame with no valid frame in its window takes ``prior``'s argmax.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    valid = ~np.isnan(probabilities).any(axis=1)
    size = 2 * smoothing + 1
    sums = uniform_filter1d(np.where(valid[:, None], probabilities, 0.0), size=size, axis=0, mode="nearest")
    counts = uniform_filter1d(valid.astype(np.float64), size=size, mode="nearest")
    has_neighbour = counts > 0.5 / size  # a window holds 0 valid frames or at least 1 (a share of 1/size)
    mean = np.where(has_neighbour[:, None], sums / np.maximum(counts, 1.0 / size)[:, None], prior[None, :])
    return mean.argmax(axis=1).astype(np.int64)


def fit_baseline(training: TrainingFrames, modality: str, config: BaselineConfig | None = None) -> FittedBaseline:
    """Fit one baseline on the sampled training frames where its input is present.

    With fewer than two classes among those frames (or a stream never present) there is nothing to fit: every frame
    then takes the prior.
    """
    config = config or BaselineConfig()
    frames = training.frames
    rows = np.flatnonzero(present(frames, modality))
    subset = {name: values[rows] for name, values in frames.items()}
    streams_seen = all(subset[_MASK_OF[stream]].any() for stream in _streams(modality))
    if np.unique(subset["labels"]).size < 2 or not streams_seen:
        return FittedBaseline(modality, None, None, training.prior)
    classifier = LogisticRegression(
        C=config.C, class_weight="balanced", max_iter=config.max_iter, tol=config.tol, random_state=config.seed
    )
    with threadpool_limits(limits=1):
        design = _Design(subset, modality)
        classifier.fit(design.matrix(subset), subset["labels"])
    return FittedBaseline(modality, design, classifier, training.prior)


def baseline_labels(
    training: TrainingFrames, evaluated: SplitData, config: BaselineConfig | None = None
) -> dict[str, np.ndarray]:
    """Labels per frame of ``evaluated`` predicted by the three baselines: ``{"visual": ..., "audio": ...,
    "both": ...}``."""
    config = config or BaselineConfig()

    def predict(modality: str) -> np.ndarray:
        return fit_baseline(training, modality, config).predict(evaluated, config.smoothing)

    # The widest fit starts first, so that on two threads the two narrow ones run beside it.
    order = sorted(MODALITIES, key=lambda modality: -len(_streams(modality)))
    with side_by_side_fits(len(order)) as pool:
        labels = dict(zip(order, pool.map(predict, order), strict=True))
    return {modality: labels[modality] for modality in MODALITIES}


def baseline_scores(
    training: TrainingFrames, evaluated: SplitData, config: BaselineConfig | None = None
) -> dict[str, float]:
    """Macro-F1 on ``evaluated`` of the three baselines: ``{"visual": f1, "audio": f1, "both": f1}``."""
    truth = evaluated.labels.cpu().numpy()
    labels = baseline_labels(training, evaluated, config)
    return {modality: macro_f1(truth, labels[modality]) for modality in MODALITIES}
