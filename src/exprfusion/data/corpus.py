"""The corpus layout: the one on-disk contract every producer writes and every consumer reads.

```
<root>/
  annotations/Train_Set/<video>.txt        official EXPR format, one label per frame, -1 = ignore
  annotations/Validation_Set/<video>.txt   (test-split videos have no annotation file)
  features/visual/<video>.npy              float16 [n_frames, Dv]  rows of frames with no face are zeros
  features/audio/<video>.npy               float16 [n_frames, Da]  aligned to the video frames
  features/face_mask/<video>.npy           bool    [n_frames]      True where a face was found
  features/audio_mask/<video>.npy          bool    [n_frames]      True where the media has audio
  corpus.json                              {"layout_version": 1, "source": "...", "n_videos": N}
  manifest.parquet                         one row per video (MANIFEST_COLUMNS); written last
```

A corpus made by a feature extractor records it in the manifest's key-value metadata under ``extractor`` (JSON: the
models, their revisions or hashes, layers, pooling, dtypes); :attr:`Corpus.extractor` reads it back (None when absent).

A video exists in the corpus only once its manifest row exists; the manifest is written last and atomically, so a
crash mid-write never leaves a half-written video that looks complete. Every file is itself written to a temporary
name and renamed into place. This module holds the layout (names, paths, the record and its checks) and the reader,
:class:`Corpus`; :mod:`exprfusion.data.corpus_writer` writes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from exprfusion.core.errors import InputError, MissingInputError
from exprfusion.core.labels import CLASS_NAMES, IGNORE_LABEL, NUM_CLASSES, SPLIT_DIRS, SPLITS
from exprfusion.data.annotations import read_expr_annotation

MANIFEST_NAME = "manifest.parquet"
EXTRACTOR_KEY = "extractor"  # manifest metadata key naming the feature extractor that made the corpus
INFO_NAME = "corpus.json"
LAYOUT_VERSION = 1
FEATURE_KINDS: tuple[str, ...] = ("visual", "audio", "face_mask", "audio_mask")
COUNT_COLUMNS: tuple[str, ...] = tuple(f"count_{name}" for name in CLASS_NAMES)
MANIFEST_COLUMNS: tuple[str, ...] = (
    "video",
    "split",
    "media",
    "subject",
    "n_frames",
    "fps",
    "visual_dim",
    "audio_dim",
    "face_rate",
    "audio_rate",
    "n_labelled",
    "n_labelled_no_face",
    *COUNT_COLUMNS,
    "sha256",
)


class CorpusError(InputError):
    """A corpus is missing, malformed, or a record does not fit the layout."""


class MissingCorpusFileError(CorpusError, MissingInputError):
    """A file of a corpus, or of the inputs imported into one, does not exist (also a ``FileNotFoundError``)."""


@dataclass(frozen=True)
class VideoRecord:
    """One video's frame-aligned features, masks and labels.

    Attributes:
        name: annotation name, e.g. ``"video12"`` or ``"video7_left"``.
        split: one of ``SPLITS``.
        fps: the video's own frame rate.
        visual: float16 ``[n, Dv]``; rows of frames with no face are zeros.
        audio: float16 ``[n, Da]`` aligned to the video frames.
        face_mask: bool ``[n]``, True where a face was found.
        audio_mask: bool ``[n]``, True where the media has audio.
        labels: int ``[n]`` in -1..7 (-1 = ignore); all -1 for the test split.
        media: shared media name; defaults to ``name`` without ``_left``/``_right``.
        subject: optional subject identifier.
    """

    name: str
    split: str
    fps: float
    visual: np.ndarray
    audio: np.ndarray
    face_mask: np.ndarray
    audio_mask: np.ndarray
    labels: np.ndarray
    media: str | None = None
    subject: str | None = None

    @property
    def n_frames(self) -> int:
        """Number of video frames."""
        return int(self.labels.shape[0])


def feature_path(root: str | Path, kind: str, video: str) -> Path:
    """Path of one video's feature array of the given kind (one of ``FEATURE_KINDS``)."""
    if kind not in FEATURE_KINDS:
        raise ValueError(f"unknown feature kind {kind!r}; expected one of {FEATURE_KINDS}")
    return Path(root) / "features" / kind / f"{video}.npy"


def annotation_path(root: str | Path, split: str, video: str) -> Path:
    """Path of one video's official annotation file inside the corpus."""
    return Path(root) / "annotations" / SPLIT_DIRS[split] / f"{video}.txt"


def validate_record(record: VideoRecord) -> None:
    """Check that a record fits the layout; raise CorpusError naming the video and the field otherwise."""
    where = f"video {record.name!r}"
    if not record.name or "/" in record.name or record.name.startswith("."):
        raise CorpusError(f"{where}: invalid video name")
    if record.split not in SPLITS:
        raise CorpusError(f"{where}: split {record.split!r} is not one of {SPLITS}")
    if not np.isfinite(record.fps) or record.fps <= 0:
        raise CorpusError(f"{where}: fps must be positive, got {record.fps}")
    n = record.labels.shape[0] if record.labels.ndim == 1 else -1
    if n <= 0:
        raise CorpusError(f"{where}: labels must be a non-empty 1-d array, got shape {record.labels.shape}")
    for field in ("visual", "audio"):
        array = getattr(record, field)
        if array.ndim != 2 or array.shape[0] != n or array.shape[1] == 0:
            raise CorpusError(f"{where}: {field} has shape {array.shape}, expected [{n}, dim] (one row per frame)")
        if not np.issubdtype(array.dtype, np.floating):
            raise CorpusError(f"{where}: {field} must be floating point, got {array.dtype}")
    for field in ("face_mask", "audio_mask"):
        array = getattr(record, field)
        if array.shape != (n,):
            raise CorpusError(f"{where}: {field} has shape {array.shape}, expected [{n}]")
    labels = np.asarray(record.labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise CorpusError(f"{where}: labels must be integers, got {labels.dtype}")
    bad = np.flatnonzero((labels < IGNORE_LABEL) | (labels >= NUM_CLASSES))
    if bad.size:
        raise CorpusError(f"{where}: label {labels[bad[0]]} at frame {bad[0] + 1} is outside -1..7")
    if record.split == "test" and (labels != IGNORE_LABEL).any():
        raise CorpusError(f"{where}: test-split videos carry no labels (all must be -1)")


class Corpus:
    """Reads a corpus: the manifest, and memory-mapped per-video arrays."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        path = self.root / MANIFEST_NAME
        if not path.is_file():
            raise MissingCorpusFileError(
                f"{self.root} is not a complete corpus: {MANIFEST_NAME} is missing "
                "(create one with `exprfusion synth` or `exprfusion import`)"
            )
        try:
            manifest = pd.read_parquet(path)
        except Exception as error:
            raise CorpusError(f"{path}: cannot read the manifest ({error})") from error
        missing = [column for column in MANIFEST_COLUMNS if column not in manifest.columns]
        if missing:
            raise CorpusError(f"{path}: manifest lacks columns {missing}")
        self.manifest = manifest.set_index("video", drop=False)
        info_path = self.root / INFO_NAME
        try:
            self.info: dict[str, Any] = json.loads(info_path.read_text()) if info_path.is_file() else {}
        except json.JSONDecodeError as error:
            raise CorpusError(f"{info_path}: not valid JSON ({error})") from None

    def __len__(self) -> int:
        return len(self.manifest)

    @property
    def extractor(self) -> dict[str, Any] | None:
        """The feature extractor recorded in the manifest (models, revisions or hashes, layers, pooling, dtypes).

        None for corpora that were synthesised, imported, or written before the record existed.
        """
        import pyarrow.parquet as pq

        path = self.root / MANIFEST_NAME
        raw = (pq.read_schema(path).metadata or {}).get(EXTRACTOR_KEY.encode())
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as error:
            raise CorpusError(f"{path}: the {EXTRACTOR_KEY!r} metadata is not valid JSON ({error})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.videos())

    def videos(self, split: str | None = None) -> list[str]:
        """Video names in manifest order, optionally of one split."""
        frame = self.manifest if split is None else self.manifest[self.manifest["split"] == split]
        return frame["video"].tolist()

    def split_of(self, video: str) -> str:
        """The split a video belongs to."""
        return str(self._row(video)["split"])

    @property
    def visual_dim(self) -> int:
        """Visual feature width (all videos share it)."""
        return self._single_value("visual_dim")

    @property
    def audio_dim(self) -> int:
        """Audio feature width (all videos share it)."""
        return self._single_value("audio_dim")

    def load(self, video: str, *, mmap: bool = True) -> VideoRecord:
        """Load one video; feature arrays are memory-mapped read-only unless ``mmap=False``."""
        row = self._row(video)
        mode = "r" if mmap else None
        arrays = {kind: self._load_array(kind, video, mode) for kind in FEATURE_KINDS}
        n = int(row["n_frames"])
        if row["split"] == "test":
            labels = np.full(n, IGNORE_LABEL, dtype=np.int64)
        else:
            try:
                labels = read_expr_annotation(annotation_path(self.root, row["split"], video)).astype(np.int64)
            except MissingInputError:
                path = annotation_path(self.root, row["split"], video)
                raise MissingCorpusFileError(f"{path} is missing (listed in the manifest)") from None
        for kind, array in arrays.items():
            if array.shape[0] != n:
                raise CorpusError(f"{feature_path(self.root, kind, video)}: {array.shape[0]} rows, manifest says {n}")
        if labels.shape[0] != n:
            path = annotation_path(self.root, row["split"], video)
            raise CorpusError(f"{path}: {labels.shape[0]} labels, manifest says {n} frames")
        return VideoRecord(
            name=video,
            split=str(row["split"]),
            fps=float(row["fps"]),
            visual=arrays["visual"],
            audio=arrays["audio"],
            face_mask=arrays["face_mask"],
            audio_mask=arrays["audio_mask"],
            labels=labels,
            media=str(row["media"]),
            subject=str(row["subject"]) or None,
        )

    def verify(self, videos: list[str] | None = None) -> list[str]:
        """Recompute content hashes; return one problem description per video that does not match."""
        problems = []
        for video in videos or self.videos():
            row = self._row(video)
            digest = hashlib.sha256()
            paths = [feature_path(self.root, kind, video) for kind in FEATURE_KINDS]
            if row["split"] != "test":
                paths.append(annotation_path(self.root, row["split"], video))
            missing = [str(p) for p in paths if not p.is_file()]
            if missing:
                problems.append(f"{video}: missing {', '.join(missing)}")
                continue
            for path in paths:
                with path.open("rb") as handle:
                    for chunk in iter(lambda h=handle: h.read(1 << 20), b""):
                        digest.update(chunk)
            if digest.hexdigest() != row["sha256"]:
                problems.append(f"{video}: content hash differs from the manifest")
        return problems

    def content_hash(self) -> str:
        """One hash for the whole corpus, derived from the per-video hashes in manifest order."""
        digest = hashlib.sha256()
        for video, sha in zip(self.manifest["video"], self.manifest["sha256"], strict=True):
            digest.update(f"{video}:{sha}\n".encode())
        return digest.hexdigest()

    def _row(self, video: str) -> pd.Series:
        try:
            return self.manifest.loc[video]
        except KeyError:
            raise CorpusError(f"video {video!r} is not in {self.root / MANIFEST_NAME}") from None

    def _load_array(self, kind: str, video: str, mode: str | None) -> np.ndarray:
        path = feature_path(self.root, kind, video)
        try:
            return np.load(path, mmap_mode=mode, allow_pickle=False)
        except FileNotFoundError:
            raise MissingCorpusFileError(f"{path} is missing (listed in the manifest)") from None
        except ValueError as error:
            raise CorpusError(f"{path}: not a valid .npy file ({error})") from error

    def _single_value(self, column: str) -> int:
        values = self.manifest[column].unique()
        if len(values) != 1:
            raise CorpusError(f"{self.root}: videos disagree on {column}: {sorted(values.tolist())}")
        return int(values[0])
