"""The service's request log and the offline drift report built from it.

The service appends one JSON line per labelled request (:func:`request_record`):

``{"time": 1764465243.1, "model_version": "exprfusion-fusion/7", "n_frames": 120, "counts": [8 ints],
"missing_face": 3, "missing_audio": 0, "reference": [8 floats] or null}``

``time`` is Unix seconds, ``counts`` the predicted frames per class (the order of
:data:`exprfusion.core.labels.CLASS_NAMES`), ``reference`` the model's ``prediction_prior`` (null for an artefact
trained before it was recorded). :func:`write_drift_report` reads a log (every worker's file and the rotated ones,
see :func:`exprfusion.monitoring.request_log.log_files`), groups the records into time bins, and writes one
self-contained HTML page (PNG plots embedded as base64): class distribution over time, Jensen–Shannon distance and
PSI against the reference, and missing-face / missing-audio rates.
The figures are those of :mod:`exprfusion.monitoring.drift`, computed per bin.
"""

from __future__ import annotations

import base64
import html
import io
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exprfusion.core.atomic import atomic_path
from exprfusion.core.errors import InputError
from exprfusion.core.labels import CLASS_NAMES, NUM_CLASSES
from exprfusion.monitoring.drift import class_distribution, js_distance, psi, reference_distribution
from exprfusion.monitoring.request_log import read_request_log

MAX_BINS = 48
"""Default number of time bins of a report (the bin width follows from the log's time span)."""


def request_record(
    labels: np.ndarray,
    face_mask: np.ndarray,
    audio_mask: np.ndarray,
    model_version: str,
    reference: Sequence[float] | None,
    when: float | None = None,
) -> dict[str, Any]:
    """One request's log record: predicted frames per class, frames without face / audio, the model and its prior.

    Args:
        labels: predicted classes ``[n]`` in 0..7.
        face_mask: bool ``[n]``, True where a face was found.
        audio_mask: bool ``[n]``, True where the frame has audio.
        model_version: what the answer reported as ``summary.model_version``.
        reference: the model's ``prediction_prior`` (None: the artefact has none).
        when: Unix time of the request (default: now).
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=NUM_CLASSES)
    return {
        "time": round(time.time() if when is None else when, 3),
        "model_version": model_version,
        "n_frames": int(counts.sum()),
        "counts": counts.tolist(),
        "missing_face": int((~np.asarray(face_mask, dtype=bool)).sum()),
        "missing_audio": int((~np.asarray(audio_mask, dtype=bool)).sum()),
        "reference": None if reference is None else [float(share) for share in reference],
    }


@dataclass(frozen=True)
class DriftSeries:
    """Drift figures per time bin of a request log.

    Attributes:
        starts: Unix time at which each bin starts ``[B]``.
        bin_seconds: width of a bin.
        counts: int64 ``[B, 8]`` predicted frames per class.
        n_frames: int64 ``[B]``.
        js_distance, psi: float64 ``[B]`` against the bin's reference (NaN: empty bin or no reference).
        missing_face_rate, missing_audio_rate: float64 ``[B]`` (NaN: empty bin).
        model_versions: the model versions the log names, in order of first appearance.
    """

    starts: np.ndarray
    bin_seconds: float
    counts: np.ndarray
    n_frames: np.ndarray
    js_distance: np.ndarray
    psi: np.ndarray
    missing_face_rate: np.ndarray
    missing_audio_rate: np.ndarray
    model_versions: list[str]


def drift_series(
    records: Sequence[dict[str, Any]], reference: object | None = None, bin_seconds: float | None = None
) -> DriftSeries:
    """Group records into time bins and compute each bin's drift figures.

    Args:
        records: log records (see :func:`read_request_log`), any order.
        reference: the reference distribution for every bin (e.g. a model's ``prediction_prior``); None: each bin's
            reference is the frame-weighted mean of its records' own ``reference`` (the figure a mix of models is
            expected to give).
        bin_seconds: bin width (default: the log's time span split into at most :data:`MAX_BINS` bins, at least 1 s).

    Raises:
        InputError: no records, a bad ``bin_seconds``, or no reference at all.
    """
    if not records:
        raise InputError("the request log holds no records")
    times = np.array([record["time"] for record in records], dtype=np.float64)
    first, span = times.min(), times.max() - times.min()
    if bin_seconds is None:
        bin_seconds = max(1.0, math.ceil(span / MAX_BINS))
    if not bin_seconds > 0:
        raise InputError(f"bin width must be positive, got {bin_seconds}")
    fixed = None if reference is None else reference_distribution(reference)
    n_bins = int(span // bin_seconds) + 1
    index = ((times - first) // bin_seconds).astype(np.int64)
    counts = np.zeros((n_bins, NUM_CLASSES), dtype=np.int64)
    missing = np.zeros((n_bins, 2), dtype=np.int64)
    weighted_reference = np.zeros((n_bins, NUM_CLASSES), dtype=np.float64)
    referenced_frames = np.zeros(n_bins, dtype=np.float64)
    versions: list[str] = []
    for record, b in zip(records, index, strict=True):
        counts[b] += record["counts"]
        missing[b] += (record["missing_face"], record["missing_audio"])
        if record["reference"] is not None:
            weighted_reference[b] += record["n_frames"] * np.asarray(record["reference"])
            referenced_frames[b] += record["n_frames"]
        if record["model_version"] not in versions:
            versions.append(record["model_version"])
    if fixed is None and not referenced_frames.any():
        raise InputError("no record carries a reference distribution: give the model (--model) to compare against")
    n_frames = counts.sum(axis=1)
    js, stability = np.full(n_bins, np.nan), np.full(n_bins, np.nan)
    for b in range(n_bins):
        if fixed is not None:
            bin_reference = fixed
        elif referenced_frames[b] > 0:
            bin_reference = weighted_reference[b] / referenced_frames[b]
        else:
            continue
        distribution = class_distribution(counts[b])
        js[b], stability[b] = js_distance(distribution, bin_reference), psi(distribution, bin_reference)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(n_frames[:, None] > 0, missing / np.maximum(n_frames, 1)[:, None], np.nan)
    return DriftSeries(
        starts=first + bin_seconds * np.arange(n_bins),
        bin_seconds=float(bin_seconds),
        counts=counts,
        n_frames=n_frames,
        js_distance=js,
        psi=stability,
        missing_face_rate=rates[:, 0],
        missing_audio_rate=rates[:, 1],
        model_versions=versions,
    )


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figures(series: DriftSeries) -> dict[str, str]:
    """The report's plots as base64 PNGs."""
    from exprfusion.evaluation.plots import new_figure

    minutes = (series.starts - series.starts[0]) / 60.0
    plots = {}
    figure = new_figure(9, 3.5)
    axes = figure.add_subplot()
    shares = np.nan_to_num(series.counts / np.maximum(series.n_frames, 1)[:, None])
    axes.stackplot(minutes, shares.T, labels=CLASS_NAMES, step="post")
    axes.set(xlabel="minutes since the first request", ylabel="share of frames", ylim=(0, 1))
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    figure.tight_layout()
    plots["Class distribution over time"] = _png(figure)

    figure = new_figure(9, 3)
    axes = figure.add_subplot()
    axes.plot(minutes, series.js_distance, marker="o", label="Jensen–Shannon distance")
    axes.plot(minutes, series.psi, marker="s", label="PSI")
    axes.set(xlabel="minutes since the first request", ylabel="drift vs the reference")
    axes.legend()
    figure.tight_layout()
    plots["Drift against the model's reference"] = _png(figure)

    figure = new_figure(9, 3)
    axes = figure.add_subplot()
    axes.plot(minutes, series.missing_face_rate, marker="o", label="missing face")
    axes.plot(minutes, series.missing_audio_rate, marker="s", label="missing audio")
    axes.set(xlabel="minutes since the first request", ylabel="share of frames", ylim=(-0.02, 1.02))
    axes.legend()
    figure.tight_layout()
    plots["Missing-face and missing-audio rates"] = _png(figure)
    return plots


def render_html(series: DriftSeries, title: str = "exprfusion drift report") -> str:
    """The report as one HTML page: a summary table, the plots (embedded PNGs) and a table per bin."""
    total = series.counts.sum(axis=0)
    start = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(series.starts[0]))
    end = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(series.starts[-1] + series.bin_seconds))
    rows = "".join(
        f"<tr><td>{time.strftime('%H:%M:%S', time.gmtime(s))}</td><td>{n}</td><td>{j:.4f}</td><td>{p:.4f}</td>"
        f"<td>{f:.3f}</td><td>{a:.3f}</td></tr>"
        for s, n, j, p, f, a in zip(
            series.starts,
            series.n_frames,
            series.js_distance,
            series.psi,
            series.missing_face_rate,
            series.missing_audio_rate,
            strict=True,
        )
    )
    plots = "".join(
        f"<h2>{html.escape(name)}</h2><img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>"
        for name, data in _figures(series).items()
    )
    classes = ", ".join(f"{name} {int(count)}" for name, count in zip(CLASS_NAMES, total, strict=True))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p>{start} – {end} UTC, {int(series.n_frames.sum())} frames, bins of {series.bin_seconds:g} s; "
        f"models: {html.escape(', '.join(series.model_versions))}</p><p>frames per class: {classes}</p>"
        f"{plots}<h2>Per bin</h2><table border='1'><tr><th>bin start (UTC)</th><th>frames</th><th>JS distance</th>"
        f"<th>PSI</th><th>missing face</th><th>missing audio</th></tr>{rows}</table></body></html>"
    )


def model_reference(model: str | Path) -> np.ndarray:
    """A model artefact's ``prediction_prior``.

    Raises:
        InputError: the artefact predates the prior (trained before it was recorded).
    """
    from exprfusion.model.artifact import load_model

    _, _, metadata = load_model(Path(model))
    prior = metadata.get("prediction_prior")
    if not prior:
        raise InputError(f"model {model} carries no prediction_prior (trained before it was recorded): retrain it")
    return reference_distribution(prior)


def write_drift_report(
    logs: Sequence[str | Path],
    out: str | Path,
    model: str | Path | None = None,
    bin_seconds: float | None = None,
    read: dict[Path, int] | None = None,
) -> Path:
    """Read request logs (every worker's file, with the rotated ones) and write the HTML drift report to ``out``.

    Args:
        logs: the configured log names or folders of logs (see :func:`exprfusion.monitoring.request_log.log_files`).
        out: the HTML file to write.
        model: a model artefact whose ``prediction_prior`` is the reference (default: the records' own).
        bin_seconds: time-bin width (default: see :func:`drift_series`).
        read: if given, gets the number of records read from each file.
    """
    reference = None if model is None else model_reference(model)
    series = drift_series(read_request_log(logs, read), reference, bin_seconds)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as partial:
        partial.write_text(render_html(series))
    return out
