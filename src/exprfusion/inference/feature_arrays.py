"""One video's frame inputs, checked once for every entry point: arrays (or nothing) in, the arrays the model reads out.

``exprfusion predict --features`` (through :func:`exprfusion.inference.predict.read_video_npz`) and the service's
``/predict``
and ``/predict_npz`` endpoints all pass their input through :func:`check_video_arrays` (an ``.npz`` archive first
through :func:`read_npz_arrays`) and label the result with :func:`exprfusion.inference.predict.predict_video`. The same
input
is therefore refused with the same message, or labelled the same way, wherever it comes from. Every message names
the source and the field: ``request: field 'audio' ...``, ``video.npz: array 'audio' ...``.

A stream may be absent (``None``): its features become zeros of the model's width and its mask is all False, so the
other branch answers alone, as it does for frames without a face.

Callers that must tell bad inputs apart (the service's HTTP status) catch the two subclasses of ``InputError``:
:class:`UnreadableInputError` (the bytes do not decode: not an ``.npz`` archive, a truncated or corrupt one, an
array of pickled objects) and :class:`TooLargeInputError` (more frames than allowed). Any other ``InputError`` is a
decoded input that is not a valid video for the model.
"""

from __future__ import annotations

import io
import lzma
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from exprfusion.core.environment import Environment
from exprfusion.core.errors import InputError
from exprfusion.model.fusion_config import FusionConfig

FEATURE_ARRAYS: tuple[str, ...] = ("visual", "audio")
MASK_ARRAYS: tuple[str, ...] = ("face_mask", "audio_mask")
MASK_OF: dict[str, str] = {"visual": "face_mask", "audio": "audio_mask"}
# The longest video one request may hold by default (EXPRFUSION_MAX_FRAMES): one hour at 30 fps.
MAX_FRAMES: int = Environment.model_fields["max_frames"].default
_NPY_MAGIC = b"\x93NUMPY"
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# What reading a damaged or hostile archive can raise (zipfile, its decompressors, numpy's .npy header parser).
_DECODING_ERRORS = (
    ValueError,
    OSError,
    EOFError,
    RuntimeError,
    NotImplementedError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    lzma.LZMAError,
    struct.error,
)


class UnreadableInputError(InputError):
    """The input's bytes do not decode: not an ``.npz`` archive, a truncated or corrupt one, or pickled objects."""


class TooLargeInputError(InputError):
    """The input holds more frames (or values) than the configured maximum."""


def _as_array(value: Any, label: str) -> np.ndarray:
    """``value`` as an array in native byte order; ragged nested lists are refused with a message naming ``label``."""
    if not isinstance(value, np.ndarray):
        try:
            value = np.asarray(value)
        except (ValueError, TypeError) as error:
            raise InputError(f"{label} must be a table with one row of equal length per frame ({error})") from None
    if not value.dtype.isnative:  # a big-endian archive ('>f4'): torch reads native byte order only
        value = value.astype(value.dtype.newbyteorder("="))
    return value


def _first_frame(bad_rows: np.ndarray) -> int:
    """1-based number of the first True row."""
    return int(np.flatnonzero(bad_rows)[0]) + 1


def _checked_features(value: Any, label: str, width: int | None) -> np.ndarray:
    """A 2-D float array of finite values, ``width`` wide; float64 and wider become float32, as the model reads."""
    array = _as_array(value, label)
    if array.ndim == 1 and array.size == 0:
        raise InputError(f"{label} has no frames")
    if array.ndim != 2:
        raise InputError(f"{label} must be 2-D [n_frames, dims], got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise InputError(f"{label} must hold floats, got dtype {array.dtype}")
    if width is not None and array.shape[1] != width:
        raise InputError(f"{label} has {array.shape[1]} values per frame, the model expects {width}")
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        raise InputError(f"{label} holds NaN or infinite values (first at frame {_first_frame(~finite)})")
    if array.dtype.itemsize > 4:
        too_large = (np.abs(array) > _FLOAT32_MAX).any(axis=1)
        if too_large.any():
            raise InputError(
                f"{label} holds values beyond the float32 range (first at frame {_first_frame(too_large)})"
            )
        array = array.astype(np.float32)
    return array


def _checked_mask(value: Any, label: str, n_frames: int, reference: str) -> np.ndarray:
    """A bool array of shape ``(n_frames,)``."""
    array = _as_array(value, label)
    if array.dtype != np.bool_:
        raise InputError(f"{label} must be bool (True = present), got dtype {array.dtype}")
    if array.shape != (n_frames,):
        raise InputError(f"{label} must have shape ({n_frames},) like '{reference}', got {array.shape}")
    return array


def check_video_arrays(
    visual: Any,
    audio: Any,
    face_mask: Any = None,
    audio_mask: Any = None,
    *,
    config: FusionConfig | None = None,
    max_frames: int | None = None,
    source: str = "request",
    kind: str = "field",
) -> dict[str, np.ndarray]:
    """Check one video's streams and masks and return the arrays :func:`exprfusion.inference.predict.predict_video`
    takes.

    Args:
        visual: face features ``[n, Dv]`` (an array or nested lists of floats), or None when the video has no
            visual stream.
        audio: audio features ``[n, Da]``, or None when it has no audio stream.
        face_mask: bool ``[n]``, True where a face was found; default: the rows of ``visual`` that are not all
            zero (all False without ``visual``).
        audio_mask: bool ``[n]``, True where audio is present; default: all True (all False without ``audio``).
        config: the model's config; with it the widths must be the model's. An absent stream needs it (its zeros
            take the model's width).
        max_frames: the most frames accepted (None: no limit).
        source: what the input is, for messages (``request``, a file name).
        kind: what its parts are called, for messages (``field``, ``array``).

    Returns:
        ``{"visual", "audio", "face_mask", "audio_mask"}``: float features (float16 and float32 kept, wider floats
        as float32), bool masks, all of ``n >= 1`` frames.

    Raises:
        TooLargeInputError: more than ``max_frames`` frames.
        InputError: both streams absent, a wrong shape, dtype or width, NaN or infinite values, streams or masks
            of different lengths, a mask that marks frames of an absent stream; the message names the field.
    """
    streams = {"visual": visual, "audio": audio}
    given = [name for name in FEATURE_ARRAYS if streams[name] is not None]
    if not given:
        raise InputError(f"{source}: neither {kind} 'visual' nor {kind} 'audio' is given; send at least one stream")
    widths = {"visual": config.visual_dim, "audio": config.audio_dim} if config is not None else {}
    if len(given) < len(FEATURE_ARRAYS) and config is None:
        raise ValueError("an absent stream is filled with zeros of the model's width: pass the model's config")
    features = {
        name: _checked_features(streams[name], f"{source}: {kind} '{name}'", widths.get(name)) for name in given
    }
    reference = given[0]
    n_frames = int(features[reference].shape[0])
    for name in given[1:]:
        if features[name].shape[0] != n_frames:
            raise InputError(
                f"{source}: {kind} '{name}' has {features[name].shape[0]} frames, '{reference}' has {n_frames}"
            )
    if n_frames == 0:
        raise InputError(f"{source}: {kind} '{reference}' has no frames")
    if max_frames is not None and n_frames > max_frames:
        raise TooLargeInputError(
            f"{source}: {kind} '{reference}' has {n_frames} frames, more than the {max_frames} allowed; "
            "split the video into parts"
        )
    masks = {"face_mask": face_mask, "audio_mask": audio_mask}
    checked = {}
    for name in FEATURE_ARRAYS:
        mask_name = MASK_OF[name]
        given_mask = masks[mask_name]
        if given_mask is not None:
            mask = _checked_mask(given_mask, f"{source}: {kind} '{mask_name}'", n_frames, reference)
        elif name not in features:
            mask = np.zeros(n_frames, dtype=bool)
        elif name == "visual":
            mask = np.any(features[name] != 0, axis=1)
        else:
            mask = np.ones(n_frames, dtype=bool)
        if name not in features:
            if mask.any():
                raise InputError(
                    f"{source}: {kind} '{mask_name}' marks frames as present but {kind} '{name}' is not given"
                )
            features[name] = np.zeros((n_frames, widths[name]), dtype=np.float32)
        checked[name] = features[name]
        checked[mask_name] = mask
    return {name: checked[name] for name in (*FEATURE_ARRAYS, *MASK_ARRAYS)}


def _npy_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype an archive member declares, read from its ``.npy`` header alone."""
    try:
        with archive.open(info) as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(member)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(member)
            else:
                raise ValueError(f".npy format version {version[0]}.{version[1]} is not read")
    except _DECODING_ERRORS as error:
        raise UnreadableInputError(f"{label} cannot be read ({error})") from None
    return tuple(shape), dtype


def _npz_bytes_limit(config: FusionConfig | None, max_frames: int | None) -> int | None:
    """The most bytes one member of a valid archive can hold: ``max_frames`` rows of the model's widest stream."""
    if config is None or max_frames is None:
        return None
    return max_frames * max(config.visual_dim, config.audio_dim, 1) * np.dtype(np.float64).itemsize


def _open_archive(source: bytes | str | os.PathLike[str], name: str) -> zipfile.ZipFile:
    """The zip archive of an ``.npz`` file's bytes or path; a single ``.npy`` array or anything else is refused."""
    try:
        if isinstance(source, bytes | bytearray | memoryview):
            head, opened = bytes(source[: len(_NPY_MAGIC)]), io.BytesIO(source)
        else:
            opened = Path(source)
            with opened.open("rb") as handle:
                head = handle.read(len(_NPY_MAGIC))
        archive = None if head == _NPY_MAGIC else zipfile.ZipFile(opened)
    except _DECODING_ERRORS as error:
        raise UnreadableInputError(f"{name}: not an .npz archive ({error})") from None
    if archive is None:
        raise UnreadableInputError(f"{name}: expected an .npz archive of named arrays (np.savez), got a single array")
    return archive


def read_npz_arrays(
    source: bytes | str | os.PathLike[str],
    name: str,
    *,
    known: Sequence[str] = FEATURE_ARRAYS + MASK_ARRAYS,
    config: FusionConfig | None = None,
    max_frames: int | None = None,
) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive (``np.savez``), decoded without unpickling anything.

    Each member's ``.npy`` header is read first: an array of Python objects is refused before any of its data is
    read, and with ``config`` and ``max_frames`` so is a member that declares more frames, or more values, than a
    valid video can hold (a small compressed archive cannot expand into gigabytes).

    Args:
        source: the archive's bytes, or a path to it.
        name: what to call it in messages (a file name, ``request``).
        known: the array names an archive may hold; any other is an InputError naming it.
        config: the model's config (bounds the values per member together with ``max_frames``).
        max_frames: the most frames accepted (None: no limit).

    Raises:
        UnreadableInputError: not an ``.npz`` archive, a damaged one, an array that cannot be read or holds objects.
        TooLargeInputError: a member declares more than ``max_frames`` frames or more values than a video can hold.
        InputError: a member other than ``known``, or one name twice.
    """
    archive = _open_archive(source, name)
    with archive:
        members = {}
        for info in archive.infolist():
            key = info.filename.removesuffix(".npy")
            if key in members:
                raise InputError(f"{name}: array '{key}' appears twice in the archive")
            members[key] = info
        unknown = sorted(set(members) - set(known))
        if unknown:
            shown = f"{unknown[:5]} and {len(unknown) - 5} more" if len(unknown) > 5 else f"{unknown}"
            raise InputError(f"{name}: unexpected arrays {shown}; expected {', '.join(known)}")
        byte_limit = _npz_bytes_limit(config, max_frames)
        for key, info in members.items():
            label = f"{name}: array '{key}'"
            shape, dtype = _npy_header(archive, info, label)
            if dtype.hasobject:
                raise UnreadableInputError(
                    f"{label} cannot be read: it holds Python objects, which are never unpickled"
                )
            if max_frames is not None and shape and shape[0] > max_frames:
                raise TooLargeInputError(
                    f"{label} has {shape[0]} frames, more than the {max_frames} allowed; split the video into parts"
                )
            declared = math.prod(shape) * dtype.itemsize
            if byte_limit is not None and declared > byte_limit:
                raise TooLargeInputError(
                    f"{label} declares shape {shape} of {dtype} ({declared} bytes), more than a video of at most "
                    f"{max_frames} frames holds at the model's widths"
                )
        arrays = {}
        for key, info in members.items():
            try:
                with archive.open(info) as member:
                    arrays[key] = np.lib.format.read_array(member, allow_pickle=False)
            except _DECODING_ERRORS as error:
                raise UnreadableInputError(f"{name}: array '{key}' cannot be read ({error})") from None
    return arrays


def read_video_npz_source(
    source: bytes | str | os.PathLike[str],
    name: str,
    *,
    config: FusionConfig | None = None,
    max_frames: int | None = None,
    allow_missing_stream: bool = False,
) -> dict[str, np.ndarray]:
    """Read and check one video's features from an ``.npz`` archive's bytes or path.

    The archive holds ``visual`` float ``[n, Dv]`` and ``audio`` float ``[n, Da]`` (with ``allow_missing_stream``
    one of them may be left out) and optionally ``face_mask`` and ``audio_mask`` bool ``[n]``; see
    :func:`check_video_arrays` for the defaults and the checks.

    Returns:
        ``{"visual", "audio", "face_mask", "audio_mask"}`` arrays.
    """
    arrays = read_npz_arrays(source, name, config=config, max_frames=max_frames)
    if not allow_missing_stream:
        for key in FEATURE_ARRAYS:
            if key not in arrays:
                raise InputError(f"{name}: array '{key}' is missing (found {sorted(arrays) or 'none'})")
    return check_video_arrays(
        arrays.get("visual"),
        arrays.get("audio"),
        arrays.get("face_mask"),
        arrays.get("audio_mask"),
        config=config,
        max_frames=max_frames,
        source=name,
        kind="array",
    )
