"""Package a model artefact for delivery: a checked copy of the file and a ``model_card.json`` beside it.

The card carries the facts a consumer needs without MLflow: the file's sha256, the model and inference settings,
the headline evaluation scores, the registry version and the git commit.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from exprfusion.artifact import ARTIFACT_FORMAT, load_model
from exprfusion.atomic import atomic_path, write_json
from exprfusion.git_info import git_commit
from exprfusion.labels import CLASS_NAMES
from exprfusion.predict import predict_video

CARD_METRICS: tuple[str, ...] = ("split", "accuracy", "macro_f1", "macro_f1_voting", "macro_f1_frame", "robustness_auc")


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
    smoke_frames: int = 256,
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
    card = {
        "name": (registration or {}).get("name"),  # None: not registered
        "file": packaged.name,
        "sha256": _sha256(packaged),
        "format": ARTIFACT_FORMAT,
        "class_names": list(CLASS_NAMES),
        "model_config": config.to_dict(),
        "inference": inference.to_dict(),
        "training": {key: metadata[key] for key in ("best_epoch", "corpus_hash", "train_config") if key in metadata},
        "metrics": {key: metrics[key] for key in CARD_METRICS if key in metrics},
        "per_class_f1": metrics.get("per_class_f1", {}),
        "registry": registration or {},
        "git_commit": git_commit(),
        "inputs": "per-frame visual [n, visual_dim] and audio [n, audio_dim] features with face and audio masks",
        "outputs": "one of the 8 Aff-Wild2 EXPR classes per frame",
    }
    return write_json(out_dir / "model_card.json", card)
