"""Decode the Aff-Wild2 media with PyAV and the face images with Pillow.

A media file gives two things: when each video frame is shown (the presentation times of the video packets, read
without decoding a picture) and the audio, resampled to the speech model's rate, mono, on the video's own timeline:
sample 0 is the instant the first frame is shown.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from exprfusion.core.errors import InputError

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")


class MediaError(InputError):
    """A media file or a face image that cannot be found or decoded; the message names the file."""


@dataclass(frozen=True)
class DecodedMedia:
    """What extraction needs from one media file.

    Attributes:
        fps: the video stream's average frame rate.
        frame_times: seconds at which each frame is shown, from the first frame (``[n_frames]``, 0 first).
        waveform: float32 mono audio at ``sample_rate``, sample 0 at the first frame; None: no audio stream.
        sample_rate: samples per second of ``waveform``.
    """

    fps: float
    frame_times: np.ndarray
    waveform: np.ndarray | None
    sample_rate: int


def index_media(videos_root: str | os.PathLike[str]) -> dict[str, list[Path]]:
    """Every video file under ``videos_root`` (any depth, e.g. ``batch1/``, ``batch2/``), by name without suffix."""
    found: dict[str, list[Path]] = {}
    for folder, _, files in os.walk(videos_root):
        for name in files:
            path = Path(folder) / name
            if path.suffix.lower() in VIDEO_SUFFIXES and not name.startswith("."):
                found.setdefault(path.stem, []).append(path)
    return {stem: sorted(paths) for stem, paths in found.items()}


def find_media(index: dict[str, list[Path]], media: str, videos_root: str | os.PathLike[str]) -> Path:
    """The one media file named ``media``; none, or two (``a.mp4`` and ``a.avi``), is a :class:`MediaError`."""
    paths = index.get(media, [])
    if not paths:
        raise MediaError(f"{videos_root}: no media file {media}{{{','.join(VIDEO_SUFFIXES)}}} at any depth")
    if len(paths) > 1:
        raise MediaError(f"media {media!r} is ambiguous: {', '.join(map(str, paths))}")
    return paths[0]


def _frame_times(pts: list[int], time_base: Fraction, fps: float, n_frames: int) -> np.ndarray:
    """Presentation times of ``n_frames`` frames: the packets' sorted times, continued at ``fps`` past the last."""
    shown = np.sort(np.asarray(pts, dtype=np.int64))
    times = (shown - shown[0]).astype(np.float64) * float(time_base) if shown.size else np.zeros(0)
    times = times[:n_frames]
    if times.size < n_frames:
        last = times[-1] if times.size else -1.0 / fps
        times = np.concatenate([times, last + np.arange(1, n_frames - times.size + 1) / fps])
    return times


def _open(path: Path):  # -> av.container.InputContainer
    import av

    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise MediaError(f"{path}: cannot open the media ({error})") from None


@dataclass(frozen=True)
class DeclaredFrames:
    """The frames a container says its video stream holds: ``exact`` when it counts them (an mp4 or mov sample table,
    an AVI header), not when estimated from its duration and frame rate (Matroska, WebM)."""

    count: int
    exact: bool

    def short_by(self, decoded: int) -> int:
        """Frames missing from ``decoded`` (0 when none, or within the one-frame rounding of an estimate)."""
        missing = self.count - decoded
        return missing if missing > (0 if self.exact else 1) else 0


def declared_frames(container: Any, stream: Any) -> DeclaredFrames | None:
    """The frame count ``stream`` declares in ``container``'s header (None: neither a count nor a duration)."""
    if stream.frames and stream.frames > 0:
        return DeclaredFrames(int(stream.frames), exact=True)
    rate = stream.average_rate or stream.guessed_rate
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / 1_000_000  # microseconds (av.time_base)
    else:
        return None
    return DeclaredFrames(round(seconds * float(rate)), exact=False) if rate else None


def frame_count(path: str | os.PathLike[str]) -> int:
    """The frames of a media's video stream: the count its header declares, else counted from its packets."""
    path = Path(path)
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(f"{path}: no video stream")
        declared = declared_frames(container, container.streams.video[0])
    return declared.count if declared is not None and declared.exact else count_frames(path)


def count_frames(path: str | os.PathLike[str]) -> int:
    """The number of frames of a media's video stream, counted from its packets (no picture is decoded)."""
    import av

    path = Path(path)
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(f"{path}: no video stream")
        stream = container.streams.video[0]
        try:
            return sum(1 for packet in container.demux(stream) if packet.size)
        except av.FFmpegError as error:
            raise MediaError(f"{path}: cannot read the video stream ({error})") from None


def decode_media(
    path: str | os.PathLike[str],
    n_frames: int,
    sample_rate: int = 16_000,
    *,
    frame_tolerance: int | None = None,
    skip_damaged: bool = False,
) -> DecodedMedia:
    """Read a media file's frame times and its audio, resampled to ``sample_rate`` mono on the video's timeline.

    Args:
        path: the video file.
        n_frames: frames to time (the annotation's count); frames past the last packet continue at the frame rate.
        sample_rate: rate of the returned waveform (the speech model's).
        frame_tolerance: when given, the video stream must hold ``n_frames`` frames up to this many more or fewer.
        skip_damaged: skip audio packets that cannot be decoded (a truncated file) instead of failing.

    Raises:
        MediaError: the file cannot be opened or decoded, has no video stream, or (with ``frame_tolerance``) holds
            another number of frames.
    """
    import av

    path = Path(path)
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(f"{path}: no video stream")
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        rate = video.average_rate or video.guessed_rate or video.base_rate
        if not rate:
            raise MediaError(f"{path}: the video stream has no frame rate")
        fps = float(rate)
        pts: list[int] = []
        missing_pts = False
        chunks: list[np.ndarray] = []
        audio_start: float | None = None
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate) if audio is not None else None
        streams = [video] if audio is None else [video, audio]
        try:
            for packet in container.demux(*streams):
                if packet.stream.type == "video":
                    if packet.size:
                        missing_pts |= packet.pts is None
                        pts.append(packet.pts if packet.pts is not None else 0)
                    continue
                try:
                    frames = packet.decode()
                except av.FFmpegError:
                    if skip_damaged:
                        continue
                    raise
                for frame in frames:
                    if audio_start is None and frame.pts is not None:
                        audio_start = float(frame.pts * frame.time_base)
                    chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
            if resampler is not None:
                chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
        except av.FFmpegError as error:
            raise MediaError(f"{path}: cannot decode ({error})") from None
    if frame_tolerance is not None and abs(len(pts) - n_frames) > frame_tolerance:
        raise MediaError(
            f"{path}: its video stream holds {len(pts)} frames, the annotation {n_frames} (more than "
            f"{frame_tolerance} apart: a truncated file, or an annotation of another video)"
        )
    if missing_pts or not pts:  # e.g. some AVI files: fall back to a constant rate
        frame_times = np.arange(n_frames, dtype=np.float64) / fps
        video_start = 0.0
    else:
        frame_times = _frame_times(pts, video.time_base, fps, n_frames)
        video_start = float(min(pts) * video.time_base)
    waveform = None
    if audio is not None:
        samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
        # Put sample 0 at the first frame: audio that starts later is preceded by silence, earlier audio is cut.
        shift = round(((audio_start if audio_start is not None else video_start) - video_start) * sample_rate)
        waveform = np.concatenate([np.zeros(shift, np.float32), samples]) if shift > 0 else samples[-shift:]
    return DecodedMedia(fps=fps, frame_times=frame_times, waveform=waveform, sample_rate=sample_rate)


def load_face(path: str | os.PathLike[str]) -> Image.Image:
    """Decode one face image to RGB; a missing, truncated or corrupt file is a :class:`MediaError`."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")  # convert() decodes the whole image, so a truncated file fails here
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise MediaError(f"{path}: cannot decode the image ({error})") from None
