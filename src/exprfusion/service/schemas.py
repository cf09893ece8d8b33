"""What the service's endpoints read and answer: JSON field types, the prediction response, the model description.

Types are strict where JSON is loose: a feature value must be a JSON number and a mask entry a JSON boolean, so
``"1.5"`` or ``1`` in a mask is a 400 naming its position, never a silent conversion. Everything about the arrays
themselves (widths, lengths, NaN, frame limits) is checked by the library (:mod:`exprfusion.inference.feature_arrays`).
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, Strict

from exprfusion.core.labels import CLASS_NAMES
from exprfusion.inference.feature_arrays import TooLargeInputError, UnreadableInputError

# FailFast: the first bad value ends validation, so a large body of bad values costs one error, not millions.
FeatureRows = Annotated[
    list[Annotated[list[Annotated[float, Strict()]], Field(fail_fast=True)]],
    Field(fail_fast=True, description="one row of feature values per frame, all rows of the model's width"),
]
MaskValues = Annotated[
    list[Annotated[bool, Strict()]], Field(fail_fast=True, description="one boolean per frame, true = present")
]
FramesPerSecond = Annotated[float, Field(ge=0.1, le=1000, allow_inf_nan=False, description="the video's frame rate")]


class NpzOptions(BaseModel):
    """The query options of ``/predict_npz`` (its body is the archive)."""

    model_config = ConfigDict(extra="forbid")

    return_probabilities: bool = False
    fps: FramesPerSecond | None = None


class PredictionSummary(BaseModel):
    """The video at a glance: frames per class, how much of it had no face or no audio, the model that answered."""

    n_frames: int
    frames_per_class: dict[str, int]
    missing_face_rate: float = Field(description="share of frames without a face (face_mask false)")
    missing_audio_rate: float = Field(description="share of frames without audio (audio_mask false)")
    model_version: str
    fps: float | None = None
    duration_s: float | None = Field(None, description="n_frames / fps, when fps is given")


class PredictResponse(BaseModel):
    """One label per frame (0..7, after window voting and the median filter) and its class name."""

    labels: list[int]
    classes: list[str]
    probabilities: list[list[float]] | None = Field(
        None, description="per frame, the 8 class probabilities of the voted logits (before the median filter)"
    )
    summary: PredictionSummary


class ModelDescription(BaseModel):
    """The served model: registry identity, parameters, scores and lineage."""

    name: str | None = Field(description="registered model name (None: not registered)")
    version: int | None = Field(description="registered model version")
    alias: str | None = Field(description="'champion' when this version took the alias when it was registered")
    champion_decision: str | None = None
    model_version: str = Field(description="what predictions report as summary.model_version")
    store_tag: str = Field(description="BentoML model-store tag")
    sha256: str
    format: str
    class_names: list[str]
    params: dict[str, Any] = Field(description="model config, inference settings and training config")
    validation_macro_f1: float | None
    metrics: dict[str, Any]
    corpus_hash: str | None
    git_commit: str | None = Field(description="the commit the package stage ran at (the model card's)")
    code_commit: str | None = Field(
        None, description="the commit the served code was built from: the Bento's build (or a checkout's HEAD)"
    )
    drift_reference: list[float] | None = Field(
        None,
        description="the model's prediction_prior, the drift reference exported at /metrics; None: the artefact "
        "predates it, so no drift figure is exported (only frame counters and missing-face rates)",
    )


def http_status(error: Exception) -> int:
    """The HTTP status of a library input error: 413 too large, 400 undecodable, 422 decoded but invalid."""
    if isinstance(error, TooLargeInputError):
        return 413
    if isinstance(error, UnreadableInputError):
        return 400
    return 422


def model_version(card: dict[str, Any]) -> str:
    """``<registered name>/<version>``, or ``sha256:<first 12>`` for an artefact that was never registered."""
    registry = card.get("registry") or {}
    if registry.get("name") and registry.get("version") is not None:
        return f"{registry['name']}/{registry['version']}"
    return f"sha256:{card['sha256'][:12]}"


def describe_model(
    card: dict[str, Any], metadata: dict[str, Any], store_tag: str, code_commit: str | None = None
) -> ModelDescription:
    """The ``GET /model`` answer from the package's card and the artefact's own metadata."""
    registry = card.get("registry") or {}
    metrics = card.get("metrics") or {}
    validation = (metadata.get("validation_metrics") or {}).get("macro_f1")
    if validation is None and metrics.get("split") == "validation":
        validation = metrics.get("macro_f1")
    return ModelDescription(
        name=registry.get("name"),
        version=registry.get("version"),
        alias="champion" if registry.get("promoted") else None,
        champion_decision=registry.get("decision"),
        model_version=model_version(card),
        store_tag=store_tag,
        sha256=card["sha256"],
        format=card["format"],
        class_names=list(card.get("class_names", CLASS_NAMES)),
        params={
            "model": card.get("model_config", {}),
            "inference": card.get("inference", {}),
            "train": (card.get("training") or {}).get("train_config", metadata.get("train_config", {})),
        },
        validation_macro_f1=validation,
        metrics=metrics,
        corpus_hash=metadata.get("corpus_hash") or (card.get("training") or {}).get("corpus_hash"),
        git_commit=card.get("git_commit"),
        code_commit=code_commit,
        drift_reference=metadata.get("prediction_prior") or None,
    )


def prediction_response(
    labels: np.ndarray,
    probabilities: np.ndarray | None,
    face_mask: np.ndarray,
    audio_mask: np.ndarray,
    fps: float | None,
    version: str,
) -> PredictResponse:
    """The ``/predict`` answer for one labelled video."""
    n_frames = int(labels.size)
    counts = np.bincount(labels, minlength=len(CLASS_NAMES))
    summary = PredictionSummary(
        n_frames=n_frames,
        frames_per_class={name: int(count) for name, count in zip(CLASS_NAMES, counts, strict=True)},
        missing_face_rate=float(1.0 - face_mask.mean()),
        missing_audio_rate=float(1.0 - audio_mask.mean()),
        model_version=version,
        fps=fps,
        duration_s=n_frames / fps if fps else None,
    )
    return PredictResponse.model_construct(
        labels=labels.tolist(),
        classes=np.asarray(CLASS_NAMES)[labels].tolist(),
        probabilities=None if probabilities is None else probabilities.tolist(),
        summary=summary,
    )
