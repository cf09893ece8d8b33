"""Import precomputed per-video features plus an official annotation tree into the corpus layout.

This is how users bring features from their own extractors::

    <annotations>/Train_Set/<video>.txt, Validation_Set/<video>.txt   official EXPR files
    <visual>/<video>.npy        [n_frames, Dv] per annotation name (one per person for _left/_right)
    <audio>/<media>.npy         [n_audio, Da] per media (or per annotation name); resampled to n_frames
    <face-mask>/<video>.npy     optional bool [n_frames]; or a cropped_aligned/<video>/%05d.jpg tree
    <fps-csv>                   optional table with columns video (or media) and fps
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from exprfusion.core.errors import MissingInputError
from exprfusion.core.settings import Flag, settings
from exprfusion.data.annotations import (
    check_annotation_length,
    face_presence_from_cropped_aligned,
    media_name,
    read_annotation_tree,
    read_expr_annotation,
)
from exprfusion.data.corpus import CorpusError, VideoRecord
from exprfusion.data.corpus_writer import CorpusWriter
from exprfusion.sources.extract.align import ALIGN_METHODS, align_to_frames

DEFAULT_FPS = 30.0


@settings(frozen=True)
class ImportSources:
    """Where the importer finds each input; only ``annotations``, ``visual`` and ``audio`` are required.

    ``align``: how audio rows map to video frames, ``nearest`` or ``linear``; ``allow_missing_audio``: import a video
    whose audio file is missing as one without audio.
    """

    annotations: Path
    visual: Path
    audio: Path
    face_mask: Path | None = None
    cropped_aligned: Path | None = None
    fps_csv: Path | None = None
    align: Literal[ALIGN_METHODS] = "nearest"
    allow_missing_audio: Flag = False

    def check_paths_exist(self) -> None:
        """Raise :class:`MissingInputError` naming the first given folder or file that does not exist.

        (A missing ``cropped_aligned`` root matters most: a missing folder under it means a video without faces, so
        a mistyped root would otherwise import every video as faceless.)
        """
        for name in ("annotations", "visual", "audio", "face_mask", "cropped_aligned", "fps_csv"):
            path = getattr(self, name)
            if path is not None and not Path(path).exists():
                raise MissingInputError(f"{path}: not found (the {name.replace('_', ' ')} input)")


def read_fps_table(path: Path) -> dict[str, float]:
    """Read a ``video,fps`` (or ``media,fps``) table into a name → fps mapping."""
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise MissingInputError(f"{path}: fps table not found") from None
    except (ValueError, UnicodeDecodeError) as error:  # pandas' EmptyDataError and ParserError are ValueErrors
        raise CorpusError(f"{path}: not a readable CSV table ({' '.join(str(error).split())})") from None
    key = "video" if "video" in table.columns else "media"
    if key not in table.columns or "fps" not in table.columns:
        raise CorpusError(f"{path}: needs columns 'video' (or 'media') and 'fps', found {list(table.columns)}")
    fps = pd.to_numeric(table["fps"], errors="coerce")
    bad = table.index[(fps.isna()) | (fps <= 0)]
    if len(bad):
        value = table["fps"].iloc[bad[0]]
        value = value.item() if isinstance(value, np.generic) else value  # -7.5, not np.float64(-7.5)
        raise CorpusError(f"{path}, row {bad[0] + 2}: fps {value!r} is not a positive number")
    return dict(zip(table[key].astype(str), fps.astype(float), strict=True))


def _load_array(path: Path, if_missing: str, mmap_mode: str | None = None) -> np.ndarray:
    """One input ``.npy`` file; a missing one is a :class:`MissingInputError` whose message ends ``if_missing``."""
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except FileNotFoundError:
        raise MissingInputError(f"{path}: {if_missing}") from None
    except ValueError as error:
        raise CorpusError(f"{path}: not a valid .npy file ({error})") from error


def _load_feature(path: Path, what: str) -> np.ndarray:
    array = _load_array(path, f"{what} features are missing", mmap_mode="r")
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating) or array.shape[0] == 0:
        raise CorpusError(
            f"{path}: {what} features must be a 2-d float array with at least one row, got {array.dtype} {array.shape}"
        )
    if not np.isfinite(array).all():
        raise CorpusError(f"{path}: {what} features contain NaN or infinite values")
    return array


def _audio_path(sources: ImportSources, video: str) -> Path | None:
    for name in (video, media_name(video)):
        path = sources.audio / f"{name}.npy"
        if path.is_file():
            return path
    return None


def _common_audio_dim(audio_dir: Path) -> int:
    """The audio feature width, read from the first audio file (the others are checked against it)."""
    first = next(iter(sorted(audio_dir.glob("*.npy"))), None)
    if first is None:
        raise CorpusError(f"{audio_dir}: no audio feature files (*.npy)")
    return int(_load_feature(first, "audio").shape[1])


def _face_mask(sources: ImportSources, video: str, visual: np.ndarray) -> np.ndarray:
    n_frames = visual.shape[0]
    if sources.face_mask is not None:
        path = sources.face_mask / f"{video}.npy"
        mask = _load_array(path, "face mask is missing")
        if mask.shape != (n_frames,):
            raise CorpusError(f"{path}: face mask has shape {mask.shape}, expected [{n_frames}]")
        return mask.astype(bool)
    if sources.cropped_aligned is not None:
        return face_presence_from_cropped_aligned(sources.cropped_aligned, video, n_frames)
    # The layout's convention: frames with no face carry all-zero visual rows.
    return np.any(np.asarray(visual) != 0, axis=1)


def import_video(
    sources: ImportSources, split: str, video: str, annotation: Path, fps: float, audio_dim: int
) -> VideoRecord:
    """Read one video's inputs, check them against each other, and return its corpus record."""
    labels = read_expr_annotation(annotation)
    visual = _load_feature(sources.visual / f"{video}.npy", "visual")
    check_annotation_length(annotation, labels, visual.shape[0])
    n_frames = visual.shape[0]
    audio_path = _audio_path(sources, video)
    if audio_path is None:
        if not sources.allow_missing_audio:
            raise CorpusError(
                f"{sources.audio}: no audio features for {video!r} (looked for {video}.npy and "
                f"{media_name(video)}.npy); pass --allow-missing-audio to import it without audio"
            )
        audio = np.zeros((n_frames, audio_dim), dtype=np.float16)
        audio_mask = np.zeros(n_frames, dtype=bool)
    else:
        audio = align_to_frames(_load_feature(audio_path, "audio"), n_frames, sources.align)
        audio_mask = np.ones(n_frames, dtype=bool)
    face_mask = _face_mask(sources, video, visual)
    visual = np.where(face_mask[:, None], np.asarray(visual, dtype=np.float16), np.float16(0))
    return VideoRecord(
        name=video,
        split=split,
        fps=fps,
        visual=visual,
        audio=np.asarray(audio, dtype=np.float16),
        face_mask=face_mask,
        audio_mask=audio_mask,
        labels=labels.astype(np.int64),
        media=media_name(video),
    )


def import_corpus(
    sources: ImportSources,
    out: Path,
    *,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Import every annotated video into a new corpus at ``out``; return the manifest path.

    Nothing is written to ``out`` unless every video imports cleanly: errors name the offending file.
    """
    sources.check_paths_exist()
    tree = read_annotation_tree(sources.annotations)
    fps_table = read_fps_table(sources.fps_csv) if sources.fps_csv else {}
    jobs = [(split, video, path) for split, videos in tree.items() for video, path in sorted(videos.items())]
    if not jobs:
        raise CorpusError(f"{sources.annotations}: no annotation files found")
    audio_dim = _common_audio_dim(sources.audio)
    visual_dim = None  # the first video's; every other must match, or the corpus could not be read
    with CorpusWriter(out, overwrite=overwrite, source=f"import:{sources.annotations}") as writer:
        for done, (split, video, path) in enumerate(jobs, start=1):
            fps = fps_table.get(video, fps_table.get(media_name(video), DEFAULT_FPS))
            record = import_video(sources, split, video, path, fps, audio_dim)
            if record.audio.shape[1] != audio_dim:
                raise CorpusError(
                    f"{_audio_path(sources, video)}: {record.audio.shape[1]} audio dims, other files have {audio_dim}"
                )
            visual_dim = record.visual.shape[1] if visual_dim is None else visual_dim
            if record.visual.shape[1] != visual_dim:
                raise CorpusError(
                    f"{sources.visual / f'{video}.npy'}: {record.visual.shape[1]} visual dims, other files have "
                    f"{visual_dim}"
                )
            writer.add(record)
            if progress:
                progress(done, len(jobs))
    return out / "manifest.parquet"
