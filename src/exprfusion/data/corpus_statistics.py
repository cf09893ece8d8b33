"""Per-video statistics of a corpus, one row per manifest row, from one pass over each video's files.

The ``validate`` stage hands this table to Great Expectations (:mod:`exprfusion.data.expectations`): the expectations
run
on one row per video, never on frame rows. Each video's arrays are memory-mapped and read once: shape, finite values
(a fast bit test on float16, the per-row search only where it finds something), face and audio rates, and the
labels' range and class counts. A broken file never stops the scan: it is counted as missing or unreadable, and its
error text kept for the report, so every problem of every video is reported at once.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from exprfusion.core.errors import MissingInputError
from exprfusion.core.labels import IGNORE_LABEL, NUM_CLASSES, SPLIT_DIRS
from exprfusion.data.annotations import EXPR_HEADER, AnnotationError, read_expr_annotation
from exprfusion.data.corpus import COUNT_COLUMNS, Corpus, annotation_path, feature_path

# Rows of a feature array checked per step: bounds the temporary arrays whatever the video's length.
_CHUNK_ROWS = 8192
# float16 bits of the exponent: all ones means inf or NaN.
_HALF_EXPONENT = np.uint16(0x7C00)


@dataclass
class VideoStats:
    """What one video's files hold. Row counts and widths are -1 where a file is missing or unreadable."""

    video: str
    split: str
    manifest_frames: int
    manifest_visual_dim: int
    manifest_audio_dim: int
    sha256: str
    visual_rows: int = -1
    visual_width: int = -1
    audio_rows: int = -1
    audio_width: int = -1
    face_mask_rows: int = -1
    audio_mask_rows: int = -1
    annotation_rows: int = -1  # -1 also for test-split videos, which have no annotation file
    nonfinite_visual_rows: int = 0
    nonfinite_audio_rows: int = 0
    first_nonfinite_row: int = -1  # 0-based row (frame k+1) of the first non-finite value, visual or audio
    label_min: int = IGNORE_LABEL
    label_max: int = IGNORE_LABEL
    n_labelled: int = 0
    class_counts: list[int] = field(default_factory=lambda: [0] * NUM_CLASSES)
    face_rate: float = 0.0
    audio_rate: float = 0.0
    missing_files: int = 0
    unreadable_files: int = 0
    n_splits: int = 1  # distinct splits the video is listed in (manifest rows and annotation folders)
    hash_matches: bool = True  # False where the content hash was checked and differs (or could not be checked)
    file_errors: list[str] = field(default_factory=list)

    def row(self) -> dict[str, object]:
        """The table row: class counts spread over the manifest's ``count_<Class>`` columns, errors joined."""
        values = asdict(self)
        counts = values.pop("class_counts")
        values.update(zip(COUNT_COLUMNS, counts, strict=True))
        values["file_errors"] = "; ".join(self.file_errors)
        return values


def video_statistics(
    corpus: Corpus,
    *,
    verify_hashes: bool = True,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Scan every video of a corpus once and return one row of :class:`VideoStats` per manifest row.

    Args:
        corpus: the corpus (its manifest may list a video twice; each row is scanned).
        verify_hashes: also recompute each video's content hash (``Corpus.verify``) into ``hash_matches``.
        workers: threads scanning videos at once (NumPy and hashing release the GIL); default: up to 4, one per CPU.
        progress: called as ``progress(done, total)`` after each video.

    Returns:
        The table, in manifest order, columns as in :class:`VideoStats` with ``count_<Class>`` per class.
    """
    manifest = corpus.manifest.reset_index(drop=True)
    listed = Counter(manifest["video"])
    splits_of: dict[str, set[str]] = {}
    for video, split in zip(manifest["video"], manifest["split"], strict=True):
        splits_of.setdefault(video, set()).add(split)
    for split, folder in SPLIT_DIRS.items():
        directory = corpus.root / "annotations" / folder
        if directory.is_dir():
            for path in directory.glob("*.txt"):
                if path.stem in splits_of:
                    splits_of[path.stem].add(split)

    def scan(index: int) -> VideoStats:
        row = manifest.iloc[index]
        stats = VideoStats(
            video=str(row["video"]),
            split=str(row["split"]),
            manifest_frames=int(row["n_frames"]),
            manifest_visual_dim=int(row["visual_dim"]),
            manifest_audio_dim=int(row["audio_dim"]),
            sha256=str(row["sha256"]),
            n_splits=len(splits_of[row["video"]]),
        )
        _scan_files(corpus.root, stats)
        if verify_hashes:
            if listed[stats.video] > 1:
                stats.hash_matches = False
                stats.file_errors.append(f"content hash not checked: listed {listed[stats.video]} times")
            else:
                problems = corpus.verify([stats.video])
                stats.hash_matches = not problems
                stats.file_errors += [p.split(": ", 1)[1] for p in problems if "missing" not in p]
        return stats

    workers = workers or min(4, os.cpu_count() or 1)
    results = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, stats in enumerate(pool.map(scan, range(len(manifest))), start=1):
            results.append(stats.row())
            if progress is not None:
                progress(done, len(manifest))
    columns = [name for name in VideoStats.__dataclass_fields__ if name != "class_counts"]
    columns[columns.index("n_labelled") + 1 : columns.index("n_labelled") + 1] = COUNT_COLUMNS
    return pd.DataFrame(results, columns=columns)


def _scan_files(root: Path, stats: VideoStats) -> None:
    """Fill ``stats`` from the video's feature, mask and annotation files."""
    arrays = {}
    for kind in ("visual", "audio", "face_mask", "audio_mask"):
        path = feature_path(root, kind, stats.video)
        if not path.is_file():
            stats.missing_files += 1
            stats.file_errors.append(f"{path} is missing")
            continue
        try:
            arrays[kind] = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as error:  # a truncated file, a bad header
            stats.unreadable_files += 1
            stats.file_errors.append(f"{path} cannot be read ({' '.join(str(error).split())})")
    for kind in ("visual", "audio"):
        if kind in arrays:
            array = arrays[kind]
            setattr(stats, f"{kind}_rows", int(array.shape[0]) if array.ndim >= 1 else -1)
            setattr(stats, f"{kind}_width", int(array.shape[1]) if array.ndim == 2 else -1)
            bad_rows = _nonfinite_rows(array)
            setattr(stats, f"nonfinite_{kind}_rows", int(bad_rows.size))
            if bad_rows.size and (stats.first_nonfinite_row < 0 or bad_rows[0] < stats.first_nonfinite_row):
                stats.first_nonfinite_row = int(bad_rows[0])
    for kind, rate in (("face_mask", "face_rate"), ("audio_mask", "audio_rate")):
        if kind in arrays:
            mask = arrays[kind]
            setattr(stats, f"{kind}_rows", int(mask.shape[0]) if mask.ndim >= 1 else -1)
            setattr(stats, rate, float(np.count_nonzero(mask) / mask.size) if mask.size else 0.0)
    if stats.split != "test":
        _scan_annotation(annotation_path(root, stats.split, stats.video), stats)


def _scan_annotation(path: Path, stats: VideoStats) -> None:
    """Fill the label statistics from an annotation file; labels outside -1..7 are kept, to be reported."""
    try:
        labels = read_expr_annotation(path)
    except MissingInputError:
        stats.missing_files += 1
        stats.file_errors.append(f"{path} is missing")
        return
    except AnnotationError as error:
        labels = _read_any_integers(path)
        stats.file_errors.append(str(error))
        if labels is None:
            stats.unreadable_files += 1
            return
    stats.annotation_rows = int(labels.size)
    stats.label_min, stats.label_max = int(labels.min()), int(labels.max())
    valid = labels[(labels >= 0) & (labels < NUM_CLASSES)]
    stats.n_labelled = int(valid.size)
    stats.class_counts = np.bincount(valid, minlength=NUM_CLASSES).tolist()


def _read_any_integers(path: Path) -> np.ndarray | None:
    """An annotation's labels whatever their range, or None if it is not the header then one integer per line."""
    lines = path.read_text(encoding="utf-8-sig", errors="replace").replace("\r\n", "\n").rstrip("\n").split("\n")
    if lines[0] != EXPR_HEADER or len(lines) < 2:
        return None
    try:
        return np.array([int(line) for line in lines[1:]], dtype=np.int64)
    except ValueError:
        return None


def _nonfinite_rows(array: np.ndarray) -> np.ndarray:
    """0-based indices of the rows holding a NaN or an infinity (empty for a non-floating array)."""
    if not np.issubdtype(array.dtype, np.floating) or array.ndim != 2:
        return np.zeros(0, dtype=np.int64)
    found = []
    for start in range(0, array.shape[0], _CHUNK_ROWS):
        chunk = array[start : start + _CHUNK_ROWS]
        if chunk.dtype == np.float16:
            # One integer pass: a float16 is inf or NaN exactly when its exponent bits are all ones.
            if (np.bitwise_and(chunk.view(np.uint16), _HALF_EXPONENT).max(initial=0)) != _HALF_EXPONENT:
                continue
        elif np.isfinite(chunk).all():
            continue
        found.append(start + np.flatnonzero(~np.isfinite(chunk).all(axis=1)))
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
