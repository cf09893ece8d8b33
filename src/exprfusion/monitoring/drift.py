"""Prediction drift and input health: the same figures for a live service and for an offline array of frames.

Three kinds of figure, over a window of the most recent frames:

- **class-distribution drift** of the predicted classes against a reference distribution (8 probabilities; at run
  time the model artefact's ``prediction_prior``, the distribution of the model's own predictions on held-out data):
  the **Jensen–Shannon distance** (base 2, in [0, 1]) and the **population stability index** (PSI);
- the **missing-face rate** and the **missing-audio rate**: shares of frames whose mask says "absent".

:class:`PredictionWindow` holds the last ``length`` frames for a service process; :func:`drift_report` computes the
same :class:`DriftReport` offline from whole arrays, so a service's figure can be checked against a recomputation.

The Jensen–Shannon figure is SciPy's ``jensenshannon(p, q, base=2)``: the *distance*, i.e. the square root of the
divergence. With base 2 it lies in [0, 1]: 0 for equal distributions, 1 for distributions with disjoint support.
PSI is ``Σ (p_i − q_i) · ln(p_i / q_i)`` (natural logarithm; the usual reading: < 0.1 stable, 0.1–0.25 a moderate
shift, > 0.25 a large one). A class that has no frame on one side would make PSI infinite, so every share is first
raised to at least :data:`PSI_EPSILON` (the distributions are *not* renormalised afterwards).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr

from exprfusion.core.errors import InputError
from exprfusion.core.labels import NUM_CLASSES

PSI_EPSILON = 1e-4
"""Share given to a class with no frame (on either side) before PSI takes ``ln(p / q)``."""


@dataclass(frozen=True)
class DriftReport:
    """Drift and input-health figures over a window of frames.

    Attributes:
        n_frames: frames in the window.
        counts: int64 ``[8]`` predicted frames per class.
        distribution: float64 ``[8]`` shares of the predicted classes (NaN when the window is empty).
        js_distance: Jensen–Shannon distance, base 2, in [0, 1], to the reference (NaN when the window is empty).
        psi: population stability index against the reference (NaN when the window is empty).
        missing_face_rate: share of frames with no face (NaN when the window is empty).
        missing_audio_rate: share of frames with no audio (NaN when the window is empty).
    """

    n_frames: int
    counts: np.ndarray
    distribution: np.ndarray
    js_distance: float
    psi: float
    missing_face_rate: float
    missing_audio_rate: float


def reference_distribution(values: object) -> np.ndarray:
    """Check a reference distribution over the 8 classes and return it as float64 shares summing to 1.

    Args:
        values: 8 non-negative numbers (probabilities, or counts, which are normalised).

    Raises:
        InputError: not 8 finite, non-negative values with a positive sum.
    """
    reference = np.asarray(values, dtype=np.float64)
    if reference.shape != (NUM_CLASSES,):
        raise InputError(f"reference distribution must hold {NUM_CLASSES} values, got shape {reference.shape}")
    if not np.isfinite(reference).all() or (reference < 0).any() or reference.sum() <= 0:
        raise InputError(f"reference distribution must be finite, non-negative and not all zero, got {values}")
    return reference / reference.sum()


def class_counts(labels: np.ndarray) -> np.ndarray:
    """Frames per predicted class: int64 ``[8]``.

    Raises:
        InputError: a label outside 0..7 (names the first offending frame).
    """
    labels = _predicted_labels(labels)
    return np.bincount(labels, minlength=NUM_CLASSES).astype(np.int64)


def class_distribution(counts: np.ndarray) -> np.ndarray:
    """Shares of the classes from per-class counts; NaN everywhere when there is no frame."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return counts / total if total > 0 else np.full(counts.shape, np.nan)


def js_distance(distribution: np.ndarray, reference: np.ndarray) -> float:
    """Jensen–Shannon distance (base 2, in [0, 1]) between two distributions; NaN if either holds a NaN.

    This is the square root of the Jensen–Shannon divergence, as ``scipy.spatial.distance.jensenshannon`` returns.
    """
    p, q = np.asarray(distribution, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if np.isnan(p).any() or np.isnan(q).any():
        return float("nan")
    return float(jensenshannon(p, q, base=2))


def psi(distribution: np.ndarray, reference: np.ndarray, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index ``Σ (p − q) · ln(p / q)``; shares below ``epsilon`` count as ``epsilon``.

    Returns NaN if either distribution holds a NaN.
    """
    p, q = np.asarray(distribution, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if np.isnan(p).any() or np.isnan(q).any():
        return float("nan")
    p, q = np.maximum(p, epsilon), np.maximum(q, epsilon)
    # rel_entr(p, q) + rel_entr(q, p) = p ln(p/q) + q ln(q/p) = (p − q) ln(p/q), term by term.
    return float((rel_entr(p, q) + rel_entr(q, p)).sum())


def missing_rate(present: np.ndarray) -> float:
    """Share of frames whose mask is False (no face, no audio): missing frames / frames; NaN for no frames."""
    present = np.asarray(present, dtype=bool)
    return int((~present).sum()) / present.size if present.size else float("nan")


def drift_report(
    labels: np.ndarray,
    reference: object,
    face_mask: np.ndarray | None = None,
    audio_mask: np.ndarray | None = None,
    window: int | None = None,
) -> DriftReport:
    """The drift figures of an array of frames, computed offline.

    Args:
        labels: predicted classes ``[n]`` in 0..7, oldest frame first.
        reference: the reference distribution (see :func:`reference_distribution`).
        face_mask: bool ``[n]``, True where a face was found (default: every frame has one).
        audio_mask: bool ``[n]``, True where the frame has audio (default: every frame has it).
        window: only the last ``window`` frames count, as in a ``PredictionWindow(window)`` that saw the whole
            array (default: all frames).

    Returns:
        The same report a :class:`PredictionWindow` of length ``window`` gives after appending these frames.
    """
    labels = _predicted_labels(labels)
    face_mask, audio_mask = _masks(labels.size, face_mask, audio_mask)
    if window is not None:
        _check_length(window)
        labels, face_mask, audio_mask = labels[-window:], face_mask[-window:], audio_mask[-window:]
    missing_face, missing_audio = int((~face_mask).sum()), int((~audio_mask).sum())
    return _report(class_counts(labels), reference_distribution(reference), missing_face, missing_audio)


class PredictionWindow:
    """The last ``length`` frames a service predicted: their classes and face/audio masks, with running counts.

    One instance per service process; ``append`` and ``report`` are thread-safe. Appending ``k`` frames costs
    O(k), whatever the window length.
    """

    def __init__(self, length: int) -> None:
        _check_length(length)
        self.length = length
        self._labels = np.zeros(length, dtype=np.int8)
        self._face = np.ones(length, dtype=bool)
        self._audio = np.ones(length, dtype=bool)
        self._counts = np.zeros(NUM_CLASSES, dtype=np.int64)
        self._missing_face = 0
        self._missing_audio = 0
        self._next = 0  # ring position the next frame is written to
        self._filled = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._filled

    def append(
        self, labels: np.ndarray, face_mask: np.ndarray | None = None, audio_mask: np.ndarray | None = None
    ) -> None:
        """Add frames (oldest first); frames beyond the window length push the oldest ones out.

        Args:
            labels: predicted classes ``[k]`` in 0..7.
            face_mask: bool ``[k]``, True where a face was found (default: all True).
            audio_mask: bool ``[k]``, True where the frame has audio (default: all True).

        Raises:
            InputError: a label outside 0..7, or a mask whose length differs from the labels'.
        """
        labels = _predicted_labels(labels)
        face_mask, audio_mask = _masks(labels.size, face_mask, audio_mask)
        # Only the last `length` frames can stay in the window.
        labels, face_mask, audio_mask = labels[-self.length :], face_mask[-self.length :], audio_mask[-self.length :]
        k = labels.size
        if k == 0:
            return
        with self._lock:
            slots = (self._next + np.arange(k)) % self.length
            # Slots in use are 0..filled-1 until the ring is full (writing starts at 0), then all of them.
            evicted = slots[slots < self._filled]
            if evicted.size:  # the frames these slots hold leave the window
                old = self._labels[evicted]
                self._counts -= np.bincount(old, minlength=NUM_CLASSES)
                self._missing_face -= int((~self._face[evicted]).sum())
                self._missing_audio -= int((~self._audio[evicted]).sum())
            self._labels[slots] = labels
            self._face[slots] = face_mask
            self._audio[slots] = audio_mask
            self._counts += np.bincount(labels, minlength=NUM_CLASSES)
            self._missing_face += int((~face_mask).sum())
            self._missing_audio += int((~audio_mask).sum())
            self._next = (self._next + k) % self.length
            self._filled = min(self.length, self._filled + k)

    def counts(self) -> np.ndarray:
        """Predicted frames per class in the window: int64 ``[8]`` (a copy)."""
        with self._lock:
            return self._counts.copy()

    def report(self, reference: object) -> DriftReport:
        """The window's drift figures against ``reference`` (see :func:`reference_distribution`)."""
        reference = reference_distribution(reference)
        with self._lock:
            counts, missing_face, missing_audio = self._counts.copy(), self._missing_face, self._missing_audio
        return _report(counts, reference, missing_face, missing_audio)


def _report(counts: np.ndarray, reference: np.ndarray, missing_face: int, missing_audio: int) -> DriftReport:
    """The report of a window with ``counts`` frames per class, of which ``missing_face`` lack a face (etc.)."""
    n = int(counts.sum())
    distribution = class_distribution(counts)
    return DriftReport(
        n_frames=n,
        counts=counts,
        distribution=distribution,
        js_distance=js_distance(distribution, reference),
        psi=psi(distribution, reference),
        missing_face_rate=missing_face / n if n else float("nan"),
        missing_audio_rate=missing_audio / n if n else float("nan"),
    )


def _predicted_labels(labels: np.ndarray) -> np.ndarray:
    """Predicted classes as an int64 vector in 0..7; an InputError names the first frame outside."""
    array = np.asarray(labels)
    if array.ndim != 1:
        raise InputError(f"predicted labels must be a 1-d array, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"predicted labels must be integers, got {array.dtype}")
    array = array.astype(np.int64, copy=False)
    bad = np.flatnonzero((array < 0) | (array >= NUM_CLASSES))
    if bad.size:
        raise InputError(f"predicted label {array[bad[0]]} at frame {bad[0]} is outside 0..{NUM_CLASSES - 1}")
    return array


def _masks(n: int, face_mask: np.ndarray | None, audio_mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Face and audio masks as bool vectors of length ``n`` (True where absent ones are not given)."""
    masks = []
    for name, mask in (("face_mask", face_mask), ("audio_mask", audio_mask)):
        array = np.ones(n, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        if array.shape != (n,):
            raise InputError(f"{name} has shape {array.shape}, expected [{n}] (one value per predicted frame)")
        masks.append(array)
    return masks[0], masks[1]


def _check_length(length: int) -> None:
    if isinstance(length, bool) or not isinstance(length, int | np.integer) or length < 1:
        raise InputError(f"window length must be a positive integer, got {length!r}")
