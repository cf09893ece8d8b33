"""The model artefact: one file holding the weights, the model config and the inference settings.

Training writes it, DVC versions it, MLflow logs it, and the service and ``exprfusion predict`` load it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from exprfusion.core.atomic import atomic_path
from exprfusion.core.errors import InputError, MissingInputError
from exprfusion.core.labels import CLASS_NAMES
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.fusion_transformer import FusionTransformer

# Version 2 adds the feature standardisers (buffers fitted on the training frames). A version-1 file is upgraded on
# load: it was trained without standardisation, so identity statistics reproduce it exactly.
ARTIFACT_FORMAT = "exprfusion-model/2"
UPGRADABLE_FORMATS: tuple[str, ...] = ("exprfusion-model/1",)


@dataclass(frozen=True)
class InferenceSettings:
    """How to turn a video's frames into labels: window length, stride of overlapping windows, median kernel."""

    window: int
    stride: int
    median_kernel: int

    def to_dict(self) -> dict[str, int]:
        """Plain dict for JSON and MLflow."""
        return {"window": self.window, "stride": self.stride, "median_kernel": self.median_kernel}


def save_model(
    path: str | Path,
    model: FusionTransformer,
    inference: InferenceSettings,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write the artefact atomically to ``path``."""
    path = Path(path)
    payload = {
        "format": ARTIFACT_FORMAT,
        "class_names": list(CLASS_NAMES),
        "model_config": model.config.to_dict(),
        "inference": inference.to_dict(),
        "metadata": metadata or {},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)
    return path


def load_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[FusionTransformer, InferenceSettings, dict]:
    """Load an artefact; return the model (eval mode), its inference settings and its metadata.

    Raises:
        MissingInputError: no file at ``path``.
        InputError: the file is not an exprfusion model artefact.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path}: model file not found")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:
        raise InputError(f"{path}: not an exprfusion model file ({error})") from error
    file_format = payload.get("format") if isinstance(payload, dict) else None
    if file_format not in (ARTIFACT_FORMAT, *UPGRADABLE_FORMATS):
        raise InputError(
            f"{path}: not an exprfusion model file of a format this version reads (format {file_format!r}; "
            f"expected {ARTIFACT_FORMAT}); retrain it with `exprfusion train` or `dvc repro`"
        )
    missing = [key for key in ("model_config", "inference", "state_dict") if key not in payload]
    if missing:
        raise InputError(f"{path}: damaged exprfusion model file (no {', '.join(missing)})")
    config = dict(payload["model_config"])
    if file_format in UPGRADABLE_FORMATS:
        config["normalisation"] = "none"  # trained on raw features: the identity standardisers reproduce it
    model = FusionTransformer(FusionConfig.from_artifact(config, where=f"{path} model_config"))
    state = dict(payload["state_dict"])
    if file_format in UPGRADABLE_FORMATS:
        state.update({key: value for key, value in model.state_dict().items() if "_standardiser." in key})
    model.load_state_dict(state)
    model.to(device).eval()
    return model, InferenceSettings(**payload["inference"]), payload.get("metadata", {})
