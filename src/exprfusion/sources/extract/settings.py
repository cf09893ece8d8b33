"""What the media extractor reads and how it runs: the inputs, both models, alignment, batching and precision.

The settings classes own every default; ``params.yaml`` (``data.media``, :class:`MediaParams`) and
``exprfusion extract`` override them. Unknown keys and bad values are errors naming their dotted path.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from exprfusion.core.errors import InputError, MissingInputError
from exprfusion.core.settings import Flag, settings, validate
from exprfusion.sources.extract.align import ALIGN_METHODS

Pooling = Literal["pooler", "mean"]
Faces = Literal["cropped_aligned", "detect"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Align = Literal[ALIGN_METHODS]
POOLINGS: tuple[str, ...] = ("pooler", "mean")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
Positive = Annotated[int, Field(ge=1)]


@settings(frozen=True)
class VisualSettings:
    """The face model: any Hugging Face image model (``AutoModel`` + ``AutoImageProcessor``), by id or local path.

    Attributes:
        model: hub id or local folder.
        revision: hub revision (branch, tag or commit); None: the default branch, resolved to its commit.
        pooling: ``pooler`` (the model's pooled output; BEiT: layer-normed mean of the patch tokens) or ``mean``
            (the plain mean of the patch tokens of ``layer``).
        layer: index into the hidden states for ``mean`` pooling (0: the embeddings; -1 or None: the last layer).
        batch_size: face images per forward pass.
    """

    model: str = "microsoft/beit-large-patch16-224"
    revision: str | None = None
    pooling: Pooling = "pooler"
    layer: int | None = None
    batch_size: Positive = 64

    def __post_init__(self) -> None:
        if self.pooling == "pooler" and self.layer is not None:
            raise ValueError("layer applies to mean pooling only (the pooler reads the last layer)")


@settings(frozen=True)
class AudioSettings:
    """The speech model: any Hugging Face wav2vec2-family model (``AutoModel`` + ``AutoFeatureExtractor``).

    Attributes:
        model: hub id or local folder.
        revision: hub revision; None: the default branch, resolved to its commit.
        layer: index into the hidden states (0: the input of the first Transformer layer); None: the last.
        chunk_seconds: audio kept from each forward pass; long audio runs in chunks of this length.
        context_seconds: audio added on each side of a chunk and then dropped, so no seam shows where the model's
            receptive field fits in it.
        batch_size: chunks per forward pass.
    """

    model: str = "microsoft/wavlm-large"
    revision: str | None = None
    layer: int | None = None
    chunk_seconds: Annotated[float, Field(gt=0.0)] = 20.0
    context_seconds: Annotated[float, Field(ge=0.0)] = 5.0
    batch_size: Positive = 4


@settings(frozen=True)
class ExtractSettings:
    """How extraction runs; only ``visual``, ``audio`` and ``align`` change the features (and the cache keys).

    Attributes:
        visual, audio: the two models.
        align: audio rows to video frames, ``nearest`` or ``linear`` (see :mod:`exprfusion.sources.extract.align`).
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1`` ...
        precision: autocast of the forward passes: ``auto`` (bf16 on CUDA, fp16 where bf16 is missing; fp32 on CPU),
            ``fp32``, ``bf16`` or ``fp16``. Features are stored as float16 either way.
        compile: wrap both models in ``torch.compile``.
        workers: processes decoding and preprocessing face images beside the model (0: in the main process);
            media files are decoded by as many threads. ``auto``: one per usable core, at most 4
            (:meth:`worker_count`).
        faces: where the face images come from: ``cropped_aligned`` (Aff-Wild2's own aligned crops, a
            ``cropped_aligned/<video>/%05d.jpg`` tree) or ``detect`` (found in each decoded frame by ``face_detector``
            and cropped as ``exprfusion predict --video`` crops them: :mod:`exprfusion.sources.extract.face_video`).
        face_detector: the detector of ``faces: detect`` (``haar``, an entry point or ``module:factory``).
    """

    visual: VisualSettings = field(default_factory=VisualSettings)
    audio: AudioSettings = field(default_factory=AudioSettings)
    align: Align = "nearest"
    device: str = "auto"
    precision: Precision = "auto"
    compile: Flag = False
    workers: Annotated[int, Field(ge=0)] | Literal["auto"] = "auto"
    faces: Faces = "cropped_aligned"
    face_detector: str = "haar"

    def worker_count(self) -> int:
        """The image-decoding processes: ``workers``, or for ``auto`` one per core this process may use, at most 4
        (more than the cores only makes PyTorch warn and the processes wait for each other)."""
        if self.workers != "auto":
            return int(self.workers)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(0, min(MAX_AUTO_WORKERS, cores))


@settings(frozen=True)
class MediaSources:
    """The official Aff-Wild2 layout the extractor reads.

    Attributes:
        annotations: ``EXPR_Recognition_Challenge`` (or its parent) with ``Train_Set/``, ``Validation_Set/``.
        cropped_aligned: ``cropped_aligned/<video>/%05d.jpg``; a frame with no file has no face. None with
            ``faces: detect`` (the faces are found in the videos).
        videos: folder searched recursively for ``<media>.mp4`` (or .avi, .mkv, .mov, .webm) with its audio.
        test_list: optional text file of test-set video names, one a line; their frames are counted in the video.
    """

    annotations: Path
    cropped_aligned: Path | None
    videos: Path
    test_list: Path | None = None

    def check_paths_exist(self) -> None:
        """Raise :class:`MissingInputError` naming the first given folder or file that does not exist."""
        for name in ("annotations", "cropped_aligned", "videos", "test_list"):
            path = getattr(self, name)
            if path is not None and not Path(path).exists():
                raise MissingInputError(f"{path}: not found (the {name.replace('_', ' ')} input)")


@settings(frozen=True)
class RunOptions:
    """Where the work goes and what a failure does; none of it changes a feature.

    Attributes:
        cache: finished videos, one file each, reused by a re-run whose inputs and extractor are unchanged;
            None: ``.<out name>.extract`` beside the corpus.
        allow_missing: write the corpus even when images or media could not be decoded (they are listed).
        ray: shard the media over Ray workers, one per GPU (also when ``RAY_ADDRESS`` is set).
        overwrite: replace an existing corpus.
    """

    cache: Path | None = None
    allow_missing: Flag = False
    ray: Flag = False
    overwrite: Flag = False


@settings(frozen=True)
class MediaParams(ExtractSettings):
    """``data.media`` in ``params.yaml``: the extraction settings, the inputs (required only when the corpus is
    extracted from media) and the run options a pipeline sets (their defaults are :class:`RunOptions`')."""

    annotations: Path | None = None
    cropped_aligned: Path | None = None
    videos: Path | None = None
    test_list: Path | None = None
    cache: Path | None = RunOptions.cache
    allow_missing: Flag = RunOptions.allow_missing
    ray: Flag = RunOptions.ray


SOURCE_KEYS = tuple(f.name for f in dataclasses.fields(MediaSources))
SETTINGS_KEYS = tuple(f.name for f in dataclasses.fields(ExtractSettings))
REQUIRED_SOURCE_KEYS = ("annotations", "cropped_aligned", "videos")  # cropped_aligned: unless faces: detect
MAX_AUTO_WORKERS = 4


def media_from_params(
    values: Mapping[str, Any] | MediaParams, *, require_sources: bool = True, path: str = "data.media"
) -> tuple[MediaSources | None, ExtractSettings, RunOptions]:
    """Split a ``data.media`` mapping into sources, settings and run options; unknown keys and bad values raise.

    Without ``require_sources`` (the media source is not in use) unset input paths give ``None`` sources.
    """
    params = (
        values if isinstance(values, MediaParams) else validate(MediaParams, values, where="params.yaml", path=path)
    )
    required = [key for key in REQUIRED_SOURCE_KEYS if not (key == "cropped_aligned" and params.faces == "detect")]
    missing = [key for key in required if getattr(params, key) is None]
    if missing and require_sources:
        raise InputError(f"params.yaml {path}: set {', '.join(missing)} to extract features from media")
    sources = None if missing else MediaSources(**{key: getattr(params, key) for key in SOURCE_KEYS})
    settings = ExtractSettings(**{key: getattr(params, key) for key in SETTINGS_KEYS})
    options = RunOptions(cache=params.cache, allow_missing=params.allow_missing, ray=params.ray)
    return sources, settings, options


def model_paths(settings: ExtractSettings, path: str = "data.media") -> list[tuple[str, str]]:
    """``(dotted key, folder)`` of each model given as a local folder rather than a hub id."""
    found = []
    for name in ("visual", "audio"):
        model = getattr(settings, name).model
        if Path(model).expanduser().exists() or model.startswith((".", "/", "~")):
            found.append((f"{path}.{name}.model", model))
    return found


def with_overrides(settings: ExtractSettings, **overrides: Any) -> ExtractSettings:
    """``settings`` with the non-None ``overrides``; ``visual_*`` and ``audio_*`` names reach the nested settings."""
    top, nested = {}, {"visual": {}, "audio": {}}
    for key, value in overrides.items():
        if value is None:
            continue
        group, _, name = key.partition("_")
        if group in nested and name:
            nested[group][name] = value
        else:
            top[key] = value
    return replace(
        settings,
        visual=replace(settings.visual, **nested["visual"]),
        audio=replace(settings.audio, **nested["audio"]),
        **top,
    )
