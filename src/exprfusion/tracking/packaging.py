"""Package a model artefact for delivery: a checked copy, its ``model_card.json``, and the Bento that serves it.

The card carries the facts a consumer needs without MLflow: the file's sha256, the model and inference settings,
the headline evaluation scores, the registry version and the git commit.

The service (``serving/service.py``) loads the model from BentoML's model store (``$BENTOML_HOME``, default
``~/bentoml``). :func:`build_bento` puts the packaged file and its card there, once per artefact (the store
version is the file's sha256), and builds the Bento from ``serving/bentofile.yaml`` with that exact model tag as
its argument; ``bento.json`` beside the card records both tags. The Bento's version is the model's, so a rebuild
from the same package (:func:`ensure_bento`, on a machine whose store lacks it) gives the same tag.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import yaml
from pydantic import Field

from exprfusion.core.atomic import atomic_path, write_json
from exprfusion.core.errors import InputError, MissingInputError
from exprfusion.core.git_info import git_commit
from exprfusion.core.labels import CLASS_NAMES
from exprfusion.core.settings import dump, settings, validate
from exprfusion.inference.predict import predict_video
from exprfusion.model.artifact import ARTIFACT_FORMAT, load_model
from exprfusion.service.build_info import write_build_record

CARD_METRICS: tuple[str, ...] = ("split", "accuracy", "macro_f1", "macro_f1_voting", "macro_f1_frame", "robustness_auc")
CARD_FILE = "model_card.json"
BENTO_RECORD = "bento.json"
# The BentoML model-store name of every packaged artefact; the service's default tag is its latest version.
BENTO_MODEL_NAME = "exprfusion-model"
MODEL_TAG_ARGUMENT = "model_tag"  # the Bento argument (`bentoml build --arg`) naming the exact model to serve
STORE_VERSION_CHARS = 20  # sha256 characters in a store version


@settings(frozen=True)
class PackageParams:
    """The ``package`` section of ``params.yaml``."""

    smoke_frames: Annotated[int, Field(ge=1)] = 256  # frames of the smoke prediction run on the packaged model


@settings(frozen=True)
class ModelCard:
    """``model_card.json``: what a consumer of the package needs without MLflow (written by :func:`package_model`,
    read by the store, the service and :func:`read_card`). The config, score and registry blocks are free-form."""

    name: str | None
    file: str
    sha256: str
    format: str
    class_names: list[str]
    model_config: dict[str, Any]
    inference: dict[str, Any]
    training: dict[str, Any]
    metrics: dict[str, Any]
    per_class_f1: dict[str, Any]
    registry: dict[str, Any]
    git_commit: str | None
    inputs: str
    outputs: str


def read_card(package_dir: str | Path) -> ModelCard:
    """The ``model_card.json`` of a package folder (or the card file itself); a missing or malformed card is an
    ``InputError`` naming the file and the field."""
    path = Path(package_dir)
    path = path / CARD_FILE if path.is_dir() else path
    if not path.is_file():
        raise MissingInputError(f"{path}: model card not found; run the package stage")
    try:
        values = json.loads(path.read_text())
    except ValueError as error:
        raise InputError(f"{path}: not valid JSON ({error})") from None
    return validate(ModelCard, values, where=str(path))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def package_model(
    model_path: str | Path,
    out_dir: str | Path,
    *,
    metrics: dict[str, Any],
    registration: dict[str, Any] | None = None,
    smoke_frames: int = PackageParams.smoke_frames,
) -> Path:
    """Copy the artefact into ``out_dir``, check it loads and predicts, and write ``model_card.json`` beside it.

    Args:
        model_path: the artefact written by training.
        out_dir: the package folder (``model.pt`` and ``model_card.json``).
        metrics: the evaluation metrics (``metrics.json``); the headline scores go into the card.
        registration: the MLflow registration of this artefact (name, version, run_id, promoted), if any.
        smoke_frames: length of the all-zero video predicted as a smoke test of the packaged file.

    Returns:
        The path of ``model_card.json``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    packaged = out_dir / Path(model_path).name
    with atomic_path(packaged) as temporary:
        shutil.copy2(model_path, temporary)
    model, inference, metadata = load_model(packaged)
    config = model.config
    labels, probabilities = predict_video(
        model,
        inference,
        np.zeros((smoke_frames, config.visual_dim), np.float32),
        np.zeros((smoke_frames, config.audio_dim), np.float32),
        np.ones(smoke_frames, bool),
        np.ones(smoke_frames, bool),
    )
    if labels.shape != (smoke_frames,) or not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError(f"{packaged}: the packaged model does not give one distribution per frame")
    card = ModelCard(
        **{
            "name": (registration or {}).get("name"),  # None: not registered
            "file": packaged.name,
            "sha256": _sha256(packaged),
            "format": ARTIFACT_FORMAT,
            "class_names": list(CLASS_NAMES),
            "model_config": config.to_dict(),
            "inference": inference.to_dict(),
            "training": {
                key: metadata[key] for key in ("best_epoch", "corpus_hash", "train_config") if key in metadata
            },
            "metrics": {key: metrics[key] for key in CARD_METRICS if key in metrics},
            "per_class_f1": metrics.get("per_class_f1", {}),
            "registry": registration or {},
            "git_commit": git_commit(),
            "inputs": "per-frame visual [n, visual_dim] and audio [n, audio_dim] features with face and audio masks",
            "outputs": "one of the 8 Aff-Wild2 EXPR classes per frame",
        }
    )
    return write_json(out_dir / CARD_FILE, dump(card))


@dataclass(frozen=True)
class BentoBuild:
    """What :func:`build_bento` did: the Bento and model tags, and how long ``bentoml build`` took."""

    bento_tag: str
    model_tag: str
    build_seconds: float


def store_model(package_dir: str | Path) -> str:
    """Put a package's artefact and card into BentoML's model store; return the tag (``exprfusion-model:<sha>``).

    The version is the artefact's sha256 (from the card), so one artefact is one store version; packaging it again
    replaces that version (its card may have changed).
    """
    import bentoml
    from bentoml.exceptions import NotFound

    package_dir = Path(package_dir)
    card = read_card(package_dir)
    tag = f"{BENTO_MODEL_NAME}:{card.sha256[:STORE_VERSION_CHARS]}"
    with contextlib.suppress(NotFound):
        bentoml.models.delete(tag)
    labels = {"registered_name": str(card.name), "registry_version": str(card.registry.get("version"))}
    metadata = {"sha256": card.sha256, "format": card.format, "git_commit": card.git_commit}
    with bentoml.models.create(tag, labels=labels, metadata=metadata) as stored:
        for name in (card.file, CARD_FILE):
            shutil.copy2(package_dir / name, stored.path_of(name))
    return tag


def _stage_build_context(bentofile: Path, source_root: Path, stage: Path) -> Path:
    """Copy the bentofile, and what its ``include`` patterns can match under ``source_root``, into ``stage``.

    BentoML walks every file of the build context to match the patterns, a project's ``.venv`` (60 000 files) and
    data included; a context holding only the top-level entries the patterns start from builds in a fraction of the
    time. ``serving/build.json`` records the commit checked out in ``source_root``. Returns the staged bentofile.
    """
    config = yaml.safe_load(bentofile.read_text()) or {}
    tops = {str(pattern).lstrip("/").split("/", 1)[0] for pattern in config.get("include") or []}
    for top in sorted(tops):
        for entry in source_root.glob(top):
            if entry.is_dir():
                shutil.copytree(entry, stage / entry.name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            elif entry.is_file():
                shutil.copy2(entry, stage / entry.name)
    if (stage / "serving").is_dir():  # the commit the Bento is built from, for GET /model
        write_build_record(stage / "serving", source_root)
    staged = stage / f".{bentofile.name}"
    shutil.copy2(bentofile, staged)
    return staged


def build_bento(package_dir: str | Path, bentofile: str | Path, source_root: str | Path) -> BentoBuild:
    """Store the package's model, build the Bento that serves it (``bentoml build``) and write ``bento.json``.

    Args:
        package_dir: the folder :func:`package_model` wrote.
        bentofile: the build file (``serving/bentofile.yaml``).
        source_root: the folder its ``include`` patterns are relative to (the repository root).

    Returns:
        The Bento tag (``exprfusion:<model version>``), the model tag and the build time.
    """
    import bentoml

    package_dir = Path(package_dir)
    model_tag = store_model(package_dir)
    version = model_tag.split(":", 1)[1]
    started = time.perf_counter()
    for bento in bentoml.bentos.list():
        if bento.tag.version == version:  # an earlier build of this package: rebuilt with today's code
            bentoml.bentos.delete(bento.tag)
    with tempfile.TemporaryDirectory(prefix="bento-context-") as context:
        staged = _stage_build_context(Path(bentofile), Path(source_root), Path(context))
        bento = bentoml.bentos.build_bentofile(
            str(staged), build_ctx=context, version=version, args={MODEL_TAG_ARGUMENT: model_tag}
        )
    build = BentoBuild(bento_tag=str(bento.tag), model_tag=model_tag, build_seconds=time.perf_counter() - started)
    write_json(package_dir / BENTO_RECORD, {"bento": build.bento_tag, "model": model_tag})
    return build


def ensure_bento(package_dir: str | Path, bentofile: str | Path, source_root: str | Path) -> str:
    """The tag of the Bento recorded in ``package_dir/bento.json``, rebuilt first if this store lacks it."""
    import bentoml
    from bentoml.exceptions import NotFound

    record = Path(package_dir) / BENTO_RECORD
    if not record.is_file():
        raise MissingInputError(f"{record}: no Bento recorded; run the package stage (`make repro`) first")
    tag = json.loads(record.read_text())["bento"]
    try:
        bentoml.bentos.get(tag)
    except NotFound:
        tag = build_bento(package_dir, bentofile, source_root).bento_tag
    return tag
