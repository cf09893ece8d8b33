"""Finished work, one file per video (faces) and one per media file (audio), reused by a re-run.

Each file is written atomically and carries a key: a sha256 of everything its content depends on, namely the
extractor's record (model, revision or hash, layer, pooling, dtype, chunking) and the bytes of its inputs (the
video's face images, or the media file). A re-run reuses a file only when the key it computes now is the one stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exprfusion.core.atomic import atomic_open


def _update_with_file(digest: Any, path: Path) -> None:
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)


def faces_key(record: dict[str, Any], images: Sequence[Path | None]) -> str:
    """Key of a video's face features: the visual record, the frame count, each present image's number and bytes."""
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode())
    digest.update(f"frames:{len(images)}\n".encode())
    for frame, path in enumerate(images):
        if path is not None:
            digest.update(f"\n{frame}:".encode())
            try:
                _update_with_file(digest, path)
            except OSError as error:  # hashed as such: the extraction reports it
                digest.update(f"unreadable {error}".encode())
    return digest.hexdigest()


def detected_faces_key(record: dict[str, Any], faces: dict[str, Any], path: Path, n_frames: int) -> str:
    """Key of a video's face features found by a detector (``faces: detect``): the visual record, the cropper's
    record, the frame count and the media file's bytes."""
    digest = hashlib.sha256(json.dumps({"visual": record, "faces": faces}, sort_keys=True).encode())
    digest.update(f"frames:{n_frames}\n".encode())
    _update_with_file(digest, path)
    return digest.hexdigest()


def media_key(record: dict[str, Any], path: Path, n_frames: int) -> str:
    """Key of a media's audio features: the audio record, the frames to time, the media file's bytes."""
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode())
    digest.update(f"frames:{n_frames}\n".encode())
    _update_with_file(digest, path)
    return digest.hexdigest()


@dataclass(frozen=True)
class FacesEntry:
    """A video's face features as cached: float16 ``[n, Dv]``, the face mask, the images that failed."""

    features: np.ndarray
    face_mask: np.ndarray
    failures: tuple[str, ...]


@dataclass(frozen=True)
class AudioEntry:
    """A media's audio as cached: the model's rows (``[rows, Da]`` float16, row j at ``j / rate`` s; none without
    an audio stream), the frame rate, and when each frame is shown (seconds, for the longest annotated video)."""

    features: np.ndarray
    has_audio: bool
    rate: float
    fps: float
    frame_times: np.ndarray


class ExtractionCache:
    """The cache folder: ``faces/<video>.npz`` and ``audio/<media>.npz``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def faces_path(self, video: str) -> Path:
        """Where a video's face features are kept."""
        return self.root / "faces" / f"{video}.npz"

    def audio_path(self, media: str) -> Path:
        """Where a media's audio features are kept."""
        return self.root / "audio" / f"{media}.npz"

    def load_faces(self, video: str, key: str) -> FacesEntry | None:
        """The cached face features of ``video`` if their key is ``key``, else None."""
        arrays = self._load(self.faces_path(video), key)
        if arrays is None:
            return None
        return FacesEntry(arrays["features"], arrays["face_mask"], tuple(str(x) for x in arrays["failures"]))

    def save_faces(self, video: str, key: str, entry: FacesEntry) -> None:
        """Keep a video's face features under ``key`` (atomically)."""
        failures = np.asarray(entry.failures, dtype=str) if entry.failures else np.zeros(0, dtype="<U1")
        self._save(self.faces_path(video), key, features=entry.features, face_mask=entry.face_mask, failures=failures)

    def load_audio(self, media: str, key: str) -> AudioEntry | None:
        """The cached audio of ``media`` if its key is ``key``, else None."""
        arrays = self._load(self.audio_path(media), key)
        if arrays is None:
            return None
        return AudioEntry(
            features=arrays["features"],
            has_audio=bool(arrays["has_audio"]),
            rate=float(arrays["rate"]),
            fps=float(arrays["fps"]),
            frame_times=arrays["frame_times"],
        )

    def save_audio(self, media: str, key: str, entry: AudioEntry) -> None:
        """Keep a media's audio features under ``key`` (atomically)."""
        self._save(
            self.audio_path(media),
            key,
            features=entry.features,
            has_audio=np.asarray(entry.has_audio),
            rate=np.asarray(entry.rate),
            fps=np.asarray(entry.fps),
            frame_times=entry.frame_times,
        )

    @staticmethod
    def _load(path: Path, key: str) -> dict[str, np.ndarray] | None:
        try:
            with np.load(path, allow_pickle=False) as arrays:
                if str(arrays["key"]) != key:
                    return None
                return {name: arrays[name] for name in arrays.files}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # absent, or damaged: extract again
            return None

    def holds_faces(self, video: str, key: str) -> bool:
        """Whether face features of ``video`` under ``key`` are cached (reads the key only)."""
        return self._key(self.faces_path(video)) == key

    def holds_audio(self, media: str, key: str) -> bool:
        """Whether audio features of ``media`` under ``key`` are cached (reads the key only)."""
        return self._key(self.audio_path(media)) == key

    @staticmethod
    def _key(path: Path) -> str | None:
        try:
            with np.load(path, allow_pickle=False) as arrays:
                return str(arrays["key"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None

    @staticmethod
    def _save(path: Path, key: str, **arrays: np.ndarray) -> None:
        with atomic_open(path, "wb") as handle:
            np.savez(handle, key=np.asarray(key), **arrays)
