"""Which checkpoint a feature came from, and where and in which precision its model runs.

A hub model is named by its id and the commit its revision resolves to; a local folder by its path and a sha256 of
its files. Either way the record changes when the weights do, so the extraction cache and the corpus's
``extractor`` record never mix features of two checkpoints.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from exprfusion.core.devices import resolve_device
from exprfusion.core.errors import InputError, MissingInputError

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def folder_sha256(folder: Path) -> str:
    """sha256 over the relative names and bytes of every file in ``folder`` (hidden files and folders excepted)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        digest.update(f"{relative.as_posix()}\0".encode())
        with path.open("rb") as handle:
            for block in iter(lambda h=handle: h.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def is_local(model: str) -> bool:
    """Whether ``model`` names a folder on disk (else a hub id)."""
    return Path(model).expanduser().is_dir()


def describe_checkpoint(model: str, revision: str | None) -> dict[str, Any]:
    """``{"model", "revision", "sha256"}``: a hub commit for hub ids, a content hash for local folders."""
    if is_local(model):
        return {"model": model, "revision": None, "sha256": folder_sha256(Path(model).expanduser())}
    if model.startswith((".", "/", "~")):
        raise MissingInputError(f"{model}: model folder not found")
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model, revision=revision)
    except OSError as error:
        raise InputError(f"model {model!r} (revision {revision!r}) cannot be loaded: {error}") from None
    return {"model": model, "revision": getattr(config, "_commit_hash", None) or revision, "sha256": None}


def load_pretrained(loader: Any, checkpoint: dict[str, Any]) -> Any:
    """``loader.from_pretrained`` on a described checkpoint (at its resolved commit for hub models)."""
    model = str(Path(checkpoint["model"]).expanduser()) if checkpoint["sha256"] else checkpoint["model"]
    options = {"revision": checkpoint["revision"]} if checkpoint["revision"] else {}
    try:
        return loader.from_pretrained(model, **options)
    except (OSError, ValueError) as error:
        raise InputError(f"{checkpoint['model']}: cannot load it with {loader.__name__} ({error})") from None


def check_layer(model: Any, layer: int | None, what: str) -> None:
    """Raise :class:`InputError` unless ``layer`` indexes the model's hidden states (embeddings + one per layer)."""
    if layer is None:
        return
    count = getattr(model.config, "num_hidden_layers", None)
    if (
        isinstance(layer, bool)
        or not isinstance(layer, int)
        or (count is not None and not -count - 1 <= layer <= count)
    ):
        raise InputError(f"{what} layer {layer!r} does not index the hidden states 0..{count} of {model.name_or_path}")


def compute_device(name: str) -> torch.device:
    """The device the models run on (``auto``: CUDA when available)."""
    device = resolve_device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r} asked for, but CUDA is not available")
    return device


def compute_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device``; None: fp32 (no autocast).

    ``auto`` is bf16 on CUDA (fp16 on GPUs without bf16) and fp32 on CPU, where features should be exact.
    """
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return _DTYPES[precision]


def dtype_name(dtype: torch.dtype | None) -> str:
    """``"float32"``, ``"bfloat16"`` or ``"float16"``."""
    return "float32" if dtype is None else str(dtype).removeprefix("torch.")


def autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    """Autocast to ``dtype`` on ``device``, or nothing for fp32."""
    if dtype is None:
        import contextlib

        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
