"""What to extract: the annotated (and listed test) videos, grouped by the media file they share.

A two-person video has two annotation names, ``<media>_left`` and ``<media>_right``, each with its own face images,
and one media file: the two are one :class:`MediaJob`, so their audio is extracted once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exprfusion.core.errors import InputError, MissingInputError
from exprfusion.core.labels import IGNORE_LABEL
from exprfusion.data.annotations import (
    face_presence_from_cropped_aligned,
    frame_image_name,
    media_name,
    read_annotation_tree,
    read_expr_annotation,
)
from exprfusion.sources.extract.media import MediaError, find_media, frame_count, index_media
from exprfusion.sources.extract.settings import MediaSources

# How far an annotation's length may be from its video's frame count. The official EXPR annotations follow the
# organisers' frame extraction, which can disagree with a decoder about the last frames of a video; a few frames
# either way is that, more is an annotation of another video or a damaged file.
FRAME_TOLERANCE = 5


@dataclass(frozen=True)
class VideoJob:
    """One annotated video: its labels (all -1 for the test split) and each frame's face image (None: no face)."""

    name: str
    split: str
    labels: np.ndarray
    images: tuple[Path | None, ...]

    @property
    def n_frames(self) -> int:
        """Frames of the video (one label per frame)."""
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class MediaJob:
    """One media file and the annotated videos that share it."""

    media: str
    path: Path
    videos: tuple[VideoJob, ...]

    @property
    def n_frames(self) -> int:
        """Frames to time: those of its longest annotated video."""
        return max(video.n_frames for video in self.videos)


def read_test_list(path: Path) -> list[str]:
    """Video names of a test-set list, one a line (blank lines and ``#`` comments skipped)."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise MissingInputError(f"{path}: test list not found") from None
    names = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    bad = [name for name in names if "/" in name or name.startswith(".")]
    if bad:
        raise InputError(f"{path}: {bad[0]!r} is not a video name")
    return names


def face_images(cropped_aligned: Path, video: str, n_frames: int) -> tuple[Path | None, ...]:
    """Each frame's image in ``cropped_aligned/<video>/`` (None where the detector kept no face)."""
    present = face_presence_from_cropped_aligned(cropped_aligned, video, n_frames)
    folder = cropped_aligned / video
    return tuple(folder / frame_image_name(i + 1) if has_face else None for i, has_face in enumerate(present))


def check_annotation_frames(annotation: Path, labels: int, media: Path, frames: int) -> None:
    """Refuse an annotation whose length differs from its video's frame count by more than
    :data:`FRAME_TOLERANCE` frames (an annotation of another video, or a video cut short)."""
    if abs(labels - frames) > FRAME_TOLERANCE:
        raise InputError(
            f"{annotation}: {labels} annotated frames, but its video {media} has {frames} frames (up to "
            f"{FRAME_TOLERANCE} apart are accepted: the official annotations may end a few frames before or after "
            "the video)"
        )


def plan_jobs(
    sources: MediaSources, progress: Callable[[int, int], None] | None = None, faces: str = "cropped_aligned"
) -> tuple[list[MediaJob], list[str]]:
    """Every media to extract, and one message per media that cannot be found or read.

    The annotations are checked as strictly as by the importer: a malformed file, a face image numbered past the
    video's frames, or an annotation whose length differs from its video's frame count (as the container declares
    it, else counted) by more than :data:`FRAME_TOLERANCE` is an :class:`InputError` that stops the run. A media file
    that is missing, ambiguous, or undecodable is reported, and its videos are left out. With ``faces="detect"`` no
    ``cropped_aligned`` tree is read (every image is None) and a media of two annotated people is refused: the
    detector finds one face per frame.
    """
    sources.check_paths_exist()
    tree = read_annotation_tree(sources.annotations)
    named = [(split, video, path) for split, videos in tree.items() for video, path in videos.items()]
    annotated = {video for _, video, _ in named}
    test_names = read_test_list(sources.test_list) if sources.test_list else []
    clash = sorted(set(test_names) & annotated)
    if clash:
        raise InputError(f"{sources.test_list}: {clash[0]!r} is also an annotated video")
    if not named and not test_names:
        raise InputError(f"{sources.annotations}: no annotation files found")
    by_media: dict[str, list[tuple[str, str, Path | None]]] = {}
    for split, video, path in [*named, *(("test", name, None) for name in test_names)]:
        by_media.setdefault(media_name(video), []).append((split, video, path))
    index = index_media(sources.videos)
    jobs, failures = [], []
    for done, (media, videos) in enumerate(sorted(by_media.items()), start=1):
        if faces == "detect" and len(videos) > 1:
            names = ", ".join(sorted(video for _, video, _ in videos))
            raise InputError(
                f"media {media} has {len(videos)} annotated people ({names}); faces: detect finds one face per frame, "
                "so such videos need faces: cropped_aligned"
            )
        try:
            media_path = find_media(index, media, sources.videos)
            frames = frame_count(media_path)
            planned = []
            for split, video, annotation in sorted(videos, key=lambda item: item[1]):
                if annotation is None:
                    labels = np.full(frames, IGNORE_LABEL, dtype=np.int64)
                else:
                    labels = read_expr_annotation(annotation).astype(np.int64)
                    check_annotation_frames(annotation, len(labels), media_path, frames)
                images = (
                    (None,) * len(labels)
                    if faces == "detect"
                    else face_images(sources.cropped_aligned, video, len(labels))
                )
                planned.append(VideoJob(video, split, labels, images))
            jobs.append(MediaJob(media, media_path, tuple(planned)))
        except MediaError as error:
            failures.append(f"{error} (videos {', '.join(v for _, v, _ in videos)} left out)")
        if progress:
            progress(done, len(by_media))
    return jobs, failures
