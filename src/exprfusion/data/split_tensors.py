"""A corpus split as contiguous tensors, and vectorised gathering of window batches from it.

Each split is stacked once (video after video) into ``[N, D]`` tensors; a batch of windows is one fancy-indexing
operation with the ``rows`` of a :class:`~exprfusion.data.windows.WindowIndex`, never per-frame Python.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from exprfusion.core.errors import InputError
from exprfusion.core.labels import IGNORE_LABEL
from exprfusion.data.annotations import media_name
from exprfusion.data.corpus import MANIFEST_NAME, Corpus
from exprfusion.data.windows import WindowIndex, build_window_index, contiguous_offsets


@dataclass(frozen=True)
class SplitData:
    """One split stacked into contiguous tensors (video ``i`` occupies rows ``offsets[i]:offsets[i]+lengths[i]``)."""

    videos: list[str]
    lengths: np.ndarray  # (V,)
    offsets: np.ndarray  # (V,)
    fps: np.ndarray  # (V,)
    visual: Tensor  # (N, Dv) float16
    audio: Tensor  # (N, Da) float16
    face_mask: Tensor  # (N,) bool
    audio_mask: Tensor  # (N,) bool
    labels: Tensor  # (N,) int64, -1 = ignore

    @property
    def n_frames(self) -> int:
        """Total frames in the split."""
        return int(self.labels.shape[0])

    def video_rows(self, video: int) -> slice:
        """The rows of video number ``video``."""
        start = int(self.offsets[video])
        return slice(start, start + int(self.lengths[video]))

    def window_index(self, window: int, stride: int) -> WindowIndex:
        """Windows of every video of the split, with global row indices into the stacked tensors."""
        return build_window_index(self.lengths, window, stride, self.offsets)

    def to(self, device: torch.device | str) -> SplitData:
        """A copy with every tensor on ``device``."""
        tensors = ("visual", "audio", "face_mask", "audio_mask", "labels")
        return replace(self, **{name: getattr(self, name).to(device) for name in tensors})

    def with_faces_masked(self, fraction: float, seed: int = 0, burst: int = 30) -> SplitData:
        """A copy where ``fraction`` of the face frames are marked missing, in bursts of ``burst`` frames.

        Bursts mimic real occlusions (a hand, a turned head) better than isolated frames do; ``fraction=1`` removes
        every face, leaving the audio branch alone.
        """
        if not 0.0 <= fraction <= 1.0:
            raise InputError(f"fraction must lie in [0, 1], got {fraction}")
        face_mask = self.face_mask.cpu().numpy().copy()
        if fraction > 0.0:
            rng = np.random.default_rng(seed)
            # Visit burst-aligned blocks in random order; take just enough blocks to hide the target face count.
            faces_per_block = np.add.reduceat(face_mask.astype(np.int64), np.arange(0, len(face_mask), burst))
            order = rng.permutation(len(faces_per_block))
            target = int(np.round(fraction * face_mask.sum()))
            n_blocks = int(np.searchsorted(np.cumsum(faces_per_block[order]), target)) + 1
            chosen = np.zeros(len(faces_per_block), dtype=bool)
            chosen[order[:n_blocks]] = True
            face_mask &= ~np.repeat(chosen, burst)[: len(face_mask)]
        mask = torch.from_numpy(face_mask).to(self.face_mask.device)
        return replace(self, face_mask=mask)


def select_videos(data: SplitData, videos: list[int]) -> SplitData:
    """A new split holding only the videos numbered ``videos`` (in that order), restacked contiguously."""
    rows = [data.video_rows(video) for video in videos]
    lengths = data.lengths[videos]

    def stack(tensor: torch.Tensor) -> torch.Tensor:
        return torch.cat([tensor[row] for row in rows]) if rows else tensor[:0]

    return SplitData(
        videos=[data.videos[video] for video in videos],
        lengths=lengths,
        offsets=contiguous_offsets(lengths),
        fps=data.fps[videos],
        visual=stack(data.visual),
        audio=stack(data.audio),
        face_mask=stack(data.face_mask),
        audio_mask=stack(data.audio_mask),
        labels=stack(data.labels),
    )


def _media_rank(media: str) -> str:
    """A fixed pseudo-random order of media names (independent of the training seed and of the corpus order)."""
    return hashlib.sha256(media.encode()).hexdigest()


def holdout_split(data: SplitData, fraction: float) -> tuple[SplitData, SplitData]:
    """Split a training split into (fit, holdout), disjoint by media: the two people of one video stay together.

    Media are taken in a fixed hash order until the holdout holds at least ``fraction`` of the labelled frames.
    Aff-Wild2 media mostly show one subject each, so a media-disjoint holdout is as close to subject-disjoint as
    the annotations allow.

    Raises:
        InputError: ``fraction`` outside (0, 1), or fewer than two media in the split.
    """
    if not 0.0 < fraction < 1.0:
        raise InputError(f"holdout_fraction must lie strictly between 0 and 1, got {fraction}")
    groups: dict[str, list[int]] = {}
    for number, video in enumerate(data.videos):
        groups.setdefault(media_name(video), []).append(number)
    if len(groups) < 2:
        raise InputError(
            f"selection on a holdout needs at least two training media, the split has {len(groups)}; "
            "set selection: validation"
        )
    labels = data.labels.cpu().numpy()
    labelled = np.array([int((labels[data.video_rows(v)] >= 0).sum()) for v in range(len(data.videos))])
    target = fraction * max(int(labelled.sum()), 1)
    held: list[int] = []
    for media in sorted(groups, key=_media_rank):
        if labelled[held].sum() >= target:
            break
        if len(held) + len(groups[media]) < len(data.videos):  # the fit split keeps at least one video
            held.extend(groups[media])
    held_set = set(held)
    fit = [video for video in range(len(data.videos)) if video not in held_set]
    return select_videos(data, fit), select_videos(data, sorted(held))


def load_split(corpus: Corpus | str | Path, split: str) -> SplitData:
    """Stack every video of ``split`` into preallocated arrays (read from the memory-mapped corpus)."""
    corpus = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
    videos = corpus.videos(split)
    if not videos:
        raise InputError(f"{corpus.root}: the corpus has no {split!r} videos")
    rows = corpus.manifest.loc[videos]
    lengths = rows["n_frames"].to_numpy(dtype=np.int64)
    offsets = contiguous_offsets(lengths)
    total = int(lengths.sum())
    visual = np.empty((total, corpus.visual_dim), dtype=np.float16)
    audio = np.empty((total, corpus.audio_dim), dtype=np.float16)
    face_mask = np.empty(total, dtype=bool)
    audio_mask = np.empty(total, dtype=bool)
    labels = np.empty(total, dtype=np.int64)
    for video, start, n in zip(videos, offsets, lengths, strict=True):
        record = corpus.load(video)
        end = start + n
        visual[start:end] = record.visual
        audio[start:end] = record.audio
        face_mask[start:end] = record.face_mask
        audio_mask[start:end] = record.audio_mask
        labels[start:end] = record.labels
    return SplitData(
        videos=videos,
        lengths=lengths,
        offsets=offsets,
        fps=rows["fps"].to_numpy(dtype=np.float64),
        visual=torch.from_numpy(visual),
        audio=torch.from_numpy(audio),
        face_mask=torch.from_numpy(face_mask),
        audio_mask=torch.from_numpy(audio_mask),
        labels=torch.from_numpy(labels),
    )


@functools.lru_cache(maxsize=1)
def _cached_training_splits(corpus_root: str, manifest_stamp: tuple[int, int]) -> tuple[SplitData, SplitData]:
    """Train and validation splits of one corpus version (``manifest_stamp``: the manifest's mtime and size)."""
    return load_split(corpus_root, "train"), load_split(corpus_root, "validation")


def training_splits(corpus_root: str | Path) -> tuple[SplitData, SplitData]:
    """The corpus's train and validation splits, loaded once per process and corpus version.

    For processes that train run after run on one corpus (a reused Ray Tune worker, an ablation worker): the next
    run takes the splits already in memory, and a corpus rewritten at the same path (a new manifest) is read again.
    """
    manifest = Path(corpus_root) / MANIFEST_NAME
    if not manifest.is_file():
        Corpus(corpus_root)  # raises the CorpusError that names the missing manifest
    stat = manifest.stat()
    return _cached_training_splits(str(Path(corpus_root).resolve()), (stat.st_mtime_ns, stat.st_size))


@dataclass(frozen=True)
class WindowBatch:
    """A batch of windows gathered from a split; padding positions are masked out and labelled -1."""

    visual: Tensor  # (B, T, Dv)
    audio: Tensor  # (B, T, Da)
    face_mask: Tensor  # (B, T) bool
    audio_mask: Tensor  # (B, T) bool
    labels: Tensor  # (B, T) int64


def gather_inputs(frames: Any, rows: Tensor, valid: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The model's inputs of the windows ``rows`` (B, T) of any frame streams (visual, audio, face and audio masks).

    Padding positions (``valid`` False) count as absent in both masks.
    """
    return (
        frames.visual[rows],
        frames.audio[rows],
        frames.face_mask[rows] & valid,
        frames.audio_mask[rows] & valid,
    )


def gather_windows(data: SplitData, rows: Tensor, valid: Tensor) -> WindowBatch:
    """Gather windows by global row indices ``rows`` (B, T) with ``valid`` (B, T) marking real frames."""
    visual, audio, face_mask, audio_mask = gather_inputs(data, rows, valid)
    labels = data.labels[rows].masked_fill(~valid, IGNORE_LABEL)
    return WindowBatch(visual=visual, audio=audio, face_mask=face_mask, audio_mask=audio_mask, labels=labels)
