"""A video file's faces, frame by frame: decode, detect, crop, embed. One path for training and for serving.

``exprfusion extract --detect-faces`` (``data.media.faces: detect``) makes a corpus's face features with
:func:`video_faces`, and ``exprfusion predict --video`` and ``/predict_video`` make a video's features with it too
(:class:`exprfusion.video.prediction.VideoFeatureExtractor`): the same decoder, detector, crop geometry
(:func:`~exprfusion.sources.extract.faces.crop_face`) and batches of the same frames, so a model trained on raw videos
is served features equal to its training features byte for byte.

The extractor record's ``faces`` entry (:func:`faces_record`) says which cropper made a corpus's faces: Aff-Wild2's
own five-landmark-aligned ``cropped_aligned`` images, or the detector with its crop size and margin (the record's
``batch_sizes`` give the batches of frames, which serving repeats). A
model trained on ``cropped_aligned`` faces and served detector crops gets a warning (:func:`cropper_warnings`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from exprfusion.sources.extract.faces import CROP_MARGIN, CROP_SIZE, FaceBox, FaceDetector, crop_face
from exprfusion.sources.extract.media import DeclaredFrames, MediaError, declared_frames
from exprfusion.sources.extract.visual import FaceEncoder

CROPPED_ALIGNED = "cropped_aligned"
DETECT = "detect"
CROPPERS: tuple[str, ...] = (CROPPED_ALIGNED, DETECT)


class MediaTooLong(MediaError):
    """A video longer than the limit it was read under."""


@dataclass(frozen=True)
class VideoFaces:
    """A video's faces: one feature row per decoded frame, the frames with a face, their boxes, what the file declared.

    Attributes:
        features: float16 ``[n, D]`` (zeros where no face was found).
        face_mask: bool ``[n]``.
        boxes: each frame's face box, None without a face.
        declared: the frame count the container declares (None: it declares none).
        damage: the first decoding error of a packet that was skipped (None: every packet decoded).
    """

    features: np.ndarray
    face_mask: np.ndarray
    boxes: tuple[FaceBox | None, ...]
    declared: DeclaredFrames | None
    damage: str | None = None


def faces_record(cropper: str, detector: str = "haar") -> dict[str, Any]:
    """The extractor record's ``faces`` entry: which cropper made the face images, and for the detector how."""
    if cropper == CROPPED_ALIGNED:
        return {"cropper": CROPPED_ALIGNED}
    return {"cropper": DETECT, "detector": detector, "crop_size": CROP_SIZE, "crop_margin": CROP_MARGIN}


def cropper_of(record: dict[str, Any]) -> dict[str, Any]:
    """The ``faces`` entry of an extractor record; a record written before it existed had ``cropped_aligned`` faces."""
    return record.get("faces") or faces_record(CROPPED_ALIGNED)


def cropper_warnings(record: dict[str, Any], detector: str) -> list[str]:
    """What to tell a user whose video faces (cropped by ``detector``) differ from the faces the model trained on."""
    faces = cropper_of(record)
    if faces["cropper"] == CROPPED_ALIGNED:
        return [
            "the model was trained on Aff-Wild2's cropped_aligned faces (aligned on five landmarks); this video's "
            f"faces are {detector} detector crops, unaligned: expect lower accuracy than on the training crops "
            "(train on `exprfusion extract --detect-faces` features for identical crops)"
        ]
    if faces.get("detector") != detector:
        return [f"the model was trained on {faces.get('detector')} detector crops; this video's are {detector}'s"]
    return []


def _check_duration(container: Any, stream: Any, path: Path, max_seconds: float | None) -> None:
    """Refuse a video whose declared duration passes ``max_seconds`` before decoding a frame."""
    if max_seconds is None:
        return
    seconds = None
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / 1_000_000  # microseconds (av.time_base)
    if seconds is not None and seconds > max_seconds:
        raise MediaTooLong(f"{path}: the video lasts {seconds:.1f} s, over the limit of {max_seconds} s")


def video_faces(
    path: str | os.PathLike[str],
    encoder: FaceEncoder,
    detector: FaceDetector,
    *,
    batch_size: int,
    max_frames: int | None = None,
    max_seconds: float | None = None,
) -> VideoFaces:
    """Decode every frame of ``path``, find its face, crop it and embed the crops ``batch_size`` at a time.

    Args:
        path: the video file.
        encoder: the image model.
        detector: the face detector.
        batch_size: crops per forward pass (consecutive face frames, the last pass filled up; training and serving
            must use the same).
        max_frames: decode no more than this many frames.
        max_seconds: refuse a video longer than this (:class:`MediaTooLong`).

    Raises:
        MediaError: the file cannot be decoded, has no video stream or no frame.
    """
    import av

    path = Path(path)
    chunks: list[np.ndarray] = []
    boxes: list[FaceBox | None] = []
    pending: list[Any] = []
    damage: str | None = None

    def embed_pending() -> None:
        pixels = encoder.processor(images=pending, return_tensors="pt")["pixel_values"]
        count = pixels.shape[0]  # a short last batch is filled up: every pass has one shape, so a crop's features do
        # not depend on which crops share its pass (training may stop at the annotation's end, serving at the video's)
        filler = pixels[-1:].expand(batch_size - count, *pixels.shape[1:])
        chunks.append(encoder.embed(torch.cat([pixels, filler]))[:count].cpu().numpy())
        pending.clear()

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path}: no video stream")
            stream = container.streams.video[0]
            _check_duration(container, stream, path, max_seconds)
            declared = declared_frames(container, stream)
            stream.thread_type = "AUTO"
            for packet in container.demux(stream):
                if max_frames is not None and len(boxes) >= max_frames:
                    break
                try:
                    frames = packet.decode()
                except av.FFmpegError as error:  # a damaged packet: its frame is lost, the next ones may decode
                    damage = damage or str(error)
                    continue
                for frame in frames:
                    if max_seconds is not None and frame.time is not None and frame.time > max_seconds:
                        raise MediaTooLong(f"{path}: the video lasts longer than the limit of {max_seconds} s")
                    if max_frames is not None and len(boxes) == max_frames:
                        break
                    image = frame.to_ndarray(format="rgb24")
                    box = detector(image)
                    boxes.append(box)
                    if box is not None:
                        pending.append(crop_face(image, box))
                        if len(pending) == batch_size:
                            embed_pending()
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise MediaError(f"{path}: cannot decode the video ({error})") from None
    if pending:
        embed_pending()
    if not boxes:
        reason = f" ({damage})" if damage else ""
        raise MediaError(f"{path}: cannot decode the video: its video stream gave no frame{reason}")
    mask = np.asarray([box is not None for box in boxes], dtype=bool)
    features = np.zeros((mask.size, encoder.dim), dtype=np.float16)
    if chunks:
        features[mask] = np.concatenate(chunks)
    return VideoFaces(features, mask, tuple(boxes), declared, damage)
