"""What the media extractor reads and how it runs: the inputs, both models, alignment, batching and precision.

The dataclasses own every default; ``params.yaml`` (``data.media``) and ``exprfusion extract`` override them. Unknown
keys are errors naming their dotted path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from exprfusion.core.errors import InputError, MissingInputError
from exprfusion.core.strict_dicts import dataclass_from_dict, reject_unknown_keys
from exprfusion.sources.extract.align import ALIGN_METHODS

POOLINGS = ("pooler", "mean")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
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
    pooling: str = "pooler"
    layer: int | None = None
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise InputError(f"visual pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.pooling == "pooler" and self.layer is not None:
            raise InputError("visual layer applies to mean pooling only (the pooler reads the last layer)")
        _check_positive("visual batch_size", self.batch_size)


@dataclass(frozen=True)
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
    chunk_seconds: float = 20.0
    context_seconds: float = 5.0
    batch_size: int = 4

    def __post_init__(self) -> None:
        _check_positive("audio chunk_seconds", self.chunk_seconds)
        _check_positive("audio batch_size", self.batch_size)
        if not self.context_seconds >= 0:
            raise InputError(f"audio context_seconds must be >= 0, got {self.context_seconds!r}")


@dataclass(frozen=True)
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
            media files are decoded by as many threads.
    """

    visual: VisualSettings = field(default_factory=VisualSettings)
    audio: AudioSettings = field(default_factory=AudioSettings)
    align: str = "nearest"
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    workers: int = 4

    def __post_init__(self) -> None:
        if self.align not in ALIGN_METHODS:
            raise InputError(f"unknown audio alignment {self.align!r}; expected one of {ALIGN_METHODS}")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise InputError(f"workers must be an integer >= 0, got {self.workers!r}")


@dataclass(frozen=True)
class MediaSources:
    """The official Aff-Wild2 layout the extractor reads.

    Attributes:
        annotations: ``EXPR_Recognition_Challenge`` (or its parent) with ``Train_Set/``, ``Validation_Set/``.
        cropped_aligned: ``cropped_aligned/<video>/%05d.jpg``; a frame with no file has no face.
        videos: folder searched recursively for ``<media>.mp4`` (or .avi, .mkv, .mov, .webm) with its audio.
        test_list: optional text file of test-set video names, one a line; their frames are counted in the video.
    """

    annotations: Path
    cropped_aligned: Path
    videos: Path
    test_list: Path | None = None

    def check_paths_exist(self) -> None:
        """Raise :class:`MissingInputError` naming the first given folder or file that does not exist."""
        for name in ("annotations", "cropped_aligned", "videos", "test_list"):
            path = getattr(self, name)
            if path is not None and not Path(path).exists():
                raise MissingInputError(f"{path}: not found (the {name.replace('_', ' ')} input)")


@dataclass(frozen=True)
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
    allow_missing: bool = False
    ray: bool = False
    overwrite: bool = False


SOURCE_KEYS = tuple(f.name for f in fields(MediaSources))
RUN_KEYS = tuple(f.name for f in fields(RunOptions))
SETTINGS_KEYS = tuple(f.name for f in fields(ExtractSettings))
MEDIA_KEYS = (*SOURCE_KEYS, *SETTINGS_KEYS, *(key for key in RUN_KEYS if key != "overwrite"))
REQUIRED_SOURCE_KEYS = ("annotations", "cropped_aligned", "videos")


def settings_from_params(values: Mapping[str, Any], path: str = "data.media") -> ExtractSettings:
    """Build the settings from a ``data.media``-shaped mapping (null values keep the defaults)."""
    values = {key: value for key, value in values.items() if key in SETTINGS_KEYS and value is not None}
    nested = {}
    for name, cls in (("visual", VisualSettings), ("audio", AudioSettings)):
        group = values.pop(name, None) or {}
        reject_unknown_keys(group, (f.name for f in fields(cls)), "params.yaml keys", path=f"{path}.{name}")
        group = {key: value for key, value in group.items() if value is not None}
        nested[name] = dataclass_from_dict(cls, group, "params.yaml keys", path=f"{path}.{name}")
    return ExtractSettings(**nested, **values)


def media_from_params(
    values: Mapping[str, Any], *, require_sources: bool = True, path: str = "data.media"
) -> tuple[MediaSources | None, ExtractSettings, RunOptions]:
    """Split a ``data.media`` mapping into sources, settings and run options; unknown keys and bad values raise.

    Without ``require_sources`` (the media source is not in use) unset input paths give ``None`` sources.
    """
    reject_unknown_keys(values, MEDIA_KEYS, "params.yaml keys", path=path)
    missing = [key for key in REQUIRED_SOURCE_KEYS if values.get(key) is None]
    if missing and require_sources:
        raise InputError(f"params.yaml {path}: set {', '.join(missing)} to extract features from media")
    given = {key: Path(values[key]) for key in SOURCE_KEYS if values.get(key) is not None}
    sources = None if missing else MediaSources(**given)
    run = {key: values[key] for key in RUN_KEYS if values.get(key) is not None}
    if "cache" in run:
        run["cache"] = Path(run["cache"])
    return sources, settings_from_params(values, path), RunOptions(**run)


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


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InputError(f"{name} must be a positive number, got {value!r}")
