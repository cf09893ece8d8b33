"""Writing the corpus layout (exprfusion.data.corpus): each video's arrays and annotation, then the manifest, last.

Videos are staged in a sibling folder and every file is written to a temporary name and renamed into place; the
manifest, written last and atomically, is what makes a video exist. A crash mid-write therefore never leaves a
half-written video that looks complete, nor a partial corpus in place of the previous one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from exprfusion.core.atomic import atomic_open
from exprfusion.core.labels import NUM_CLASSES
from exprfusion.data.annotations import media_name, write_expr_annotation
from exprfusion.data.corpus import (
    COUNT_COLUMNS,
    EXTRACTOR_KEY,
    FEATURE_KINDS,
    INFO_NAME,
    LAYOUT_VERSION,
    MANIFEST_COLUMNS,
    MANIFEST_NAME,
    CorpusError,
    VideoRecord,
    annotation_path,
    feature_path,
    validate_record,
)


class _HashingFile:
    """A write-only file wrapper that feeds every written byte to a hash."""

    def __init__(self, handle: IO[bytes], digest: Any) -> None:
        self._handle = handle
        self._digest = digest

    def write(self, data: bytes | memoryview) -> int:
        self._digest.update(data)
        return self._handle.write(data)


def _atomic_write(path: Path, write: Any, digest: Any | None = None) -> None:
    """Write a file through ``write(handle)`` atomically, feeding the bytes to ``digest`` when given."""
    with atomic_open(path, "wb") as handle:
        write(_HashingFile(handle, digest) if digest is not None else handle)


def _label_counts(labels: np.ndarray) -> np.ndarray:
    valid = labels[labels >= 0].astype(np.int64)
    return np.bincount(valid, minlength=NUM_CLASSES)[:NUM_CLASSES]


class CorpusWriter:
    """Writes videos into the corpus layout, then the manifest.

    Videos are staged in a sibling folder; ``close()`` writes the manifest and swaps the staged corpus in. Use it as
    a context manager: on an exception the staged files are discarded and any previous corpus is left untouched::

        with CorpusWriter("corpus") as writer:
            writer.add(record)
    """

    def __init__(
        self, root: str | Path, *, overwrite: bool = False, source: str = "", extractor: dict[str, Any] | None = None
    ) -> None:
        self.root = Path(root)
        self.source = source
        self.extractor = extractor  # stored in the manifest's metadata (EXTRACTOR_KEY) when given
        if self.root.exists() and not (self.root.is_dir() and not any(self.root.iterdir())) and not overwrite:
            raise CorpusError(f"{self.root} already exists and is not empty; pass overwrite=True to replace it")
        # Everything is written into a sibling staging folder and swapped in by close(): an interrupted write
        # leaves the previous corpus (if any) untouched and never a partial one in its place.
        self.stage = self.root.parent / f".{self.root.name}.partial"
        shutil.rmtree(self.stage, ignore_errors=True)
        self.stage.mkdir(parents=True)
        self._rows: list[dict[str, Any]] = []
        self._names: set[str] = set()
        self._closed = False

    def add(self, record: VideoRecord) -> dict[str, Any]:
        """Validate and write one video atomically; return its manifest row."""
        if self._closed:
            raise CorpusError("the writer is closed")
        validate_record(record)
        if record.name in self._names:
            raise CorpusError(f"video {record.name!r} was already added to {self.root}")
        digest = hashlib.sha256()
        arrays = {
            "visual": np.ascontiguousarray(record.visual, dtype=np.float16),
            "audio": np.ascontiguousarray(record.audio, dtype=np.float16),
            "face_mask": np.ascontiguousarray(record.face_mask, dtype=bool),
            "audio_mask": np.ascontiguousarray(record.audio_mask, dtype=bool),
        }
        for kind in FEATURE_KINDS:
            array = arrays[kind]
            _atomic_write(
                feature_path(self.stage, kind, record.name),
                lambda handle, a=array: np.lib.format.write_array(handle, a, allow_pickle=False),
                digest,
            )
        labels = np.asarray(record.labels, dtype=np.int64)
        if record.split != "test":
            path = annotation_path(self.stage, record.split, record.name)
            write_expr_annotation(path, labels)
            digest.update(path.read_bytes())
        n = record.n_frames
        counts = _label_counts(labels)
        row: dict[str, Any] = {
            "video": record.name,
            "split": record.split,
            "media": record.media or media_name(record.name),
            "subject": record.subject or "",
            "n_frames": n,
            "fps": float(record.fps),
            "visual_dim": int(arrays["visual"].shape[1]),
            "audio_dim": int(arrays["audio"].shape[1]),
            "face_rate": float(arrays["face_mask"].mean()),
            "audio_rate": float(arrays["audio_mask"].mean()),
            "n_labelled": int(counts.sum()),
            "n_labelled_no_face": int(((labels >= 0) & ~arrays["face_mask"]).sum()),
            **{column: int(c) for column, c in zip(COUNT_COLUMNS, counts, strict=True)},
            "sha256": digest.hexdigest(),
        }
        self._rows.append(row)
        self._names.add(record.name)
        return row

    def close(self) -> Path:
        """Write ``manifest.parquet``, swap the staged corpus into place, and return the manifest path."""
        if self._closed:
            return self.root / MANIFEST_NAME
        frame = manifest_frame(self._rows)
        info = {"layout_version": LAYOUT_VERSION, "source": self.source, "n_videos": len(frame)}
        _atomic_write(self.stage / INFO_NAME, lambda handle: handle.write(json.dumps(info, indent=2).encode()))
        _atomic_write(self.stage / MANIFEST_NAME, lambda handle: _write_manifest(handle, frame, self.extractor))
        previous = self.root.parent / f".{self.root.name}.previous"
        shutil.rmtree(previous, ignore_errors=True)
        if self.root.exists():
            os.replace(self.root, previous)
        os.replace(self.stage, self.root)
        shutil.rmtree(previous, ignore_errors=True)
        self._closed = True
        return self.root / MANIFEST_NAME

    def abort(self) -> None:
        """Discard everything written so far; the previous corpus (if any) stays as it was."""
        shutil.rmtree(self.stage, ignore_errors=True)
        self._closed = True

    def __enter__(self) -> CorpusWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _write_manifest(handle: Any, frame: pd.DataFrame, extractor: dict[str, Any] | None) -> None:
    """Write the manifest table; with an extractor, its JSON goes into the file's metadata under EXTRACTOR_KEY."""
    if extractor is None:
        frame.to_parquet(handle, index=False)  # the bytes of corpora without an extractor stay as they always were
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), EXTRACTOR_KEY.encode(): json.dumps(extractor, sort_keys=True).encode()}
    pq.write_table(table.replace_schema_metadata(metadata), handle)


def manifest_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Build the manifest table from rows, with the documented column order and dtypes."""
    frame = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    integer_columns = ["n_frames", "visual_dim", "audio_dim", "n_labelled", "n_labelled_no_face", *COUNT_COLUMNS]
    return frame.astype({column: "int64" for column in integer_columns})
