"""Read and write the official Aff-Wild2 EXPR files: annotations, the annotation tree, test submissions.

An annotation file is the header ``Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other`` then one
integer per frame: line k+2 of the file holds the label of frame k (0-based), i.e. of the image
``<video>/%05d.jpg`` % (k+1); ``-1`` means "not annotated". Two-person videos have annotations
``<video>_left`` and ``<video>_right`` sharing one media file ``<video>``. A test submission is one CSV
listing every frame of every test video.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from exprfusion.core.atomic import atomic_open
from exprfusion.core.errors import InputError, MissingInputError
from exprfusion.core.labels import CLASS_NAMES, IGNORE_LABEL, NUM_CLASSES, SPLIT_DIRS

EXPR_HEADER = ",".join(CLASS_NAMES)
SUBMISSION_HEADER = "image_location," + EXPR_HEADER
CHALLENGE_DIR = "EXPR_Recognition_Challenge"
TWO_PERSON_SUFFIXES: tuple[str, ...] = ("_left", "_right")

_MIN_LABEL, _MAX_LABEL = IGNORE_LABEL, NUM_CLASSES - 1
_INTEGER_LINE = re.compile(r"\s*[+-]?[0-9]+\s*")
_SUBMISSION_ROW = re.compile(r"(?P<video>[^/,]+)/(?P<frame>[0-9]+)\.jpg,(?P<label>[+-]?[0-9]+)\s*")
_FRAME_IMAGE = re.compile(r"([0-9]{5,})\.jpg")
# Bytes an all-integer file may contain; anything else (e.g. "1_0" or non-ASCII digits, which int() accepts)
# sends the file to the per-line scan that names the offending line.
_INTEGER_BYTES = np.zeros(256, dtype=bool)
_INTEGER_BYTES[list(b"0123456789+- \t\r\n")] = True


class AnnotationError(InputError):
    """A malformed annotation or submission file; the message names the file and the 1-based line number."""

    def __init__(self, path: str | os.PathLike[str], line: int, reason: str) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = reason
        super().__init__(f"{self.path}, line {line}: {reason}")

    def __reduce__(self) -> tuple[type[AnnotationError], tuple[Path, int, str]]:
        # Keeps the exception picklable, so it crosses process boundaries (Ray workers) intact.
        return (type(self), (self.path, self.line, self.reason))


def frame_image_name(frame_number: int) -> str:
    """Return the official image name of a 1-based frame number, e.g. ``17 -> "00017.jpg"``."""
    return f"{frame_number:05d}.jpg"


def media_name(video: str) -> str:
    """Return the name of the video/audio file of an annotated video (``"10-60_left" -> "10-60"``)."""
    for suffix in TWO_PERSON_SUFFIXES:
        if video.endswith(suffix):
            return video[: -len(suffix)]
    return video


def read_expr_annotation(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an official EXPR annotation file.

    Args:
        path: the ``<video>.txt`` file.

    Returns:
        int64 array of shape [n_frames]; entry k is the label of frame k (0-based), in -1..7.

    Raises:
        AnnotationError: wrong header, empty file, no frames, a non-integer line or a label outside -1..7.
        MissingInputError: no file at ``path``.
    """
    path = Path(path)
    raw = _read_bytes(path, "annotation file")
    lines = _body_lines(path, raw, EXPR_HEADER, what="frame labels")
    labels = _parse_integers(raw[raw.index(b"\n") + 1 :], lines)
    if labels is None:
        labels = _parse_integers_line_by_line(path, lines)
    out_of_range = np.flatnonzero((labels < _MIN_LABEL) | (labels > _MAX_LABEL))
    if out_of_range.size:
        index = int(out_of_range[0])
        raise AnnotationError(path, index + 2, f"label {labels[index]} is outside {_MIN_LABEL}..{_MAX_LABEL}")
    return labels


def write_expr_annotation(path: str | os.PathLike[str], labels: np.ndarray) -> None:
    """Write labels as an official EXPR annotation file, atomically (no reader ever sees a partial file).

    Args:
        path: destination ``<video>.txt``; missing parent folders are created.
        labels: integer array [n_frames] with values in -1..7; n_frames >= 1.

    Raises:
        ValueError: labels are not a non-empty 1-D integer array in -1..7 (names the file and the frame).
    """
    path = Path(path)
    labels = _as_label_vector(path, labels, _MIN_LABEL, "label")
    with atomic_open(path) as handle:
        handle.write(EXPR_HEADER + "\n")
        handle.write("\n".join(map(str, labels.tolist())) + "\n")


def check_annotation_length(
    path: str | os.PathLike[str], labels: np.ndarray, n_frames: int, tolerance: int = 0
) -> None:
    """Check that an annotation covers as many frames as the features, up to ``tolerance`` frames either way.

    Raises:
        AnnotationError: the lengths differ by more than ``tolerance``; the line is the first extra label
            when the annotation is too long, or its last line when it is too short.
    """
    if n_frames < 0 or tolerance < 0:
        raise ValueError(f"n_frames ({n_frames}) and tolerance ({tolerance}) must be >= 0")
    n_labels = len(labels)
    if abs(n_labels - n_frames) <= tolerance:
        return
    if n_labels > n_frames:
        line, where = n_frames + 2, "first label beyond the last frame"
    else:
        line, where = n_labels + 1, "annotation ends here"
    raise AnnotationError(
        path,
        line,
        f"annotation has {n_labels} frame labels but there are {n_frames} feature frames ({where})",
    )


def read_annotation_tree(root: str | os.PathLike[str]) -> dict[str, dict[str, Path]]:
    """Find the annotation files of every split present under ``root``.

    Args:
        root: the ``EXPR_Recognition_Challenge`` folder (holding ``Train_Set/`` ...) or its parent.

    Returns:
        split ("train", "validation", "test"; only those present) -> {video: path}, videos sorted by name.

    Raises:
        MissingInputError: no split folder under ``root`` (nor under ``root/EXPR_Recognition_Challenge``).
        InputError: a video is annotated in two splits.
    """
    root = Path(root)
    for base in (root, root / CHALLENGE_DIR):
        split_dirs = {split: base / name for split, name in SPLIT_DIRS.items() if (base / name).is_dir()}
        if split_dirs:
            break
    else:
        wanted = ", ".join(SPLIT_DIRS.values())
        raise MissingInputError(f"{root}: no split folder ({wanted}) here nor under {root / CHALLENGE_DIR}")
    tree: dict[str, dict[str, Path]] = {}
    seen: dict[str, Path] = {}
    for split, folder in split_dirs.items():
        # Names starting with "." are editor/OS droppings (e.g. macOS "._v1.txt"), never annotations.
        files = sorted(p for p in folder.glob("*.txt") if not p.name.startswith("."))
        tree[split] = {p.stem: p for p in files}
        for video, file in tree[split].items():
            if video in seen:
                raise InputError(f"video {video!r} is annotated in two splits: {seen[video]} and {file}")
            seen[video] = file
    return tree


def face_presence_from_cropped_aligned(cropped_root: str | os.PathLike[str], video: str, n_frames: int) -> np.ndarray:
    """Tell, per frame, whether the face detector kept a face image for it.

    Args:
        cropped_root: the ``cropped_aligned`` folder, holding ``<video>/00001.jpg`` ...
        video: annotated video name (``_left``/``_right`` included: each person has their own folder).
        n_frames: number of frames of the video.

    Returns:
        bool array [n_frames]; True at frame i (0-based) iff ``<video>/%05d.jpg`` % (i+1) exists. A missing
        folder gives all False (no face was ever detected).

    Raises:
        InputError: an image is numbered 0 or beyond ``n_frames`` (the frame count is wrong); names the file.
    """
    folder = Path(cropped_root) / video
    present = np.zeros(n_frames, dtype=bool)
    if not folder.is_dir():
        return present
    numbers = []
    with os.scandir(folder) as entries:  # one directory read instead of n_frames stat calls
        for entry in entries:
            match = _FRAME_IMAGE.fullmatch(entry.name)
            if match is None:
                continue
            number = int(match.group(1))
            if not 1 <= number <= n_frames:
                raise InputError(f"{entry.path}: frame number {number} is outside 1..{n_frames} for video {video}")
            numbers.append(number)
    present[np.asarray(numbers, dtype=np.int64) - 1] = True
    return present


def write_submission(path: str | os.PathLike[str], predictions: Mapping[str, np.ndarray]) -> None:
    """Write a test-set submission atomically: a row per frame of every video, videos sorted, frames in order.

    Args:
        path: destination CSV file.
        predictions: video -> integer array [n_frames] of predicted classes in 0..7, one per frame, including
            frames with no face (the challenge scores every listed frame).

    Raises:
        InputError: no videos, or a video name that cannot appear in an image location.
        ValueError: a prediction that is not a class in 0..7 (names the video and the frame).
    """
    path = Path(path)
    if not predictions:
        raise InputError(f"{path}: no videos to write")
    checked = {}
    for video in sorted(predictions):
        if not video or "/" in video or "," in video:
            raise InputError(f"{path}: video name {video!r} cannot be written as '<video>/00001.jpg'")
        checked[video] = _as_label_vector(path, predictions[video], 0, f"prediction of video {video}")
    with atomic_open(path) as handle:
        handle.write(SUBMISSION_HEADER + "\n")
        for video, labels in checked.items():
            handle.writelines(
                f"{video}/{frame_image_name(number)},{label}\n" for number, label in enumerate(labels.tolist(), start=1)
            )


def read_submission(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a submission written by :func:`write_submission`.

    Returns:
        video -> int64 array [n_frames] of predicted classes, in file order.

    Raises:
        AnnotationError: wrong header, a malformed row, a class outside 0..7, or frames of a video that are
            not 1, 2, 3, ... in one contiguous block.
        MissingInputError: no file at ``path``.
    """
    path = Path(path)
    lines = _body_lines(path, _read_bytes(path, "submission file"), SUBMISSION_HEADER, what="rows")
    predictions: dict[str, list[int]] = {}
    previous_video = None
    for line_number, line in enumerate(lines, start=2):
        row = _SUBMISSION_ROW.fullmatch(line)
        if row is None:
            raise AnnotationError(path, line_number, f"expected '<video>/00001.jpg,<class>', got {_show(line)}")
        video, frame, label = row["video"], int(row["frame"]), int(row["label"])
        if not 0 <= label <= _MAX_LABEL:
            raise AnnotationError(path, line_number, f"class {label} is outside 0..{_MAX_LABEL}")
        if video != previous_video:
            if video in predictions:
                raise AnnotationError(path, line_number, f"video {video} appears again after other videos")
            predictions[video] = []
        expected = len(predictions[video]) + 1
        if frame != expected:
            raise AnnotationError(path, line_number, f"expected frame {expected} of video {video}, got {frame}")
        predictions[video].append(label)
        previous_video = video
    return {video: np.asarray(labels, dtype=np.int64) for video, labels in predictions.items()}


def _read_bytes(path: Path, what: str) -> bytes:
    """The file's bytes; a missing file is a :class:`MissingInputError` naming it."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise MissingInputError(f"{path}: {what} not found") from None


def _body_lines(path: Path, raw: bytes, header: str, what: str) -> list[str]:
    """Decode a header-plus-rows file, check its header and return the rows (trailing blank lines dropped)."""
    try:
        text = raw.decode("utf-8-sig")  # -sig: tolerate the byte-order mark some Windows editors write
    except UnicodeDecodeError as error:
        raise AnnotationError(path, raw[: error.start].count(b"\n") + 1, "not UTF-8 text") from None
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise AnnotationError(path, 1, f"file is empty; expected the header {header!r}")
    if lines[0] != header:
        raise AnnotationError(path, 1, f"expected the header {header!r}, got {_show(lines[0])}")
    if len(lines) == 1:
        raise AnnotationError(path, 2, f"no {what} after the header")
    return lines[1:]


def _parse_integers(body: bytes, lines: list[str]) -> np.ndarray | None:
    """Parse one integer per line, or return None when some line is not a plain ASCII integer."""
    if not _INTEGER_BYTES[np.frombuffer(body, dtype=np.uint8)].all():
        return None
    try:
        # int() over the lines runs in C and, given the byte check above, accepts exactly [+-]digits.
        return np.fromiter(map(int, lines), dtype=np.int64, count=len(lines))
    except (ValueError, OverflowError):
        return None


def _parse_integers_line_by_line(path: Path, lines: list[str]) -> np.ndarray:
    """Parse one integer per line, raising for the first bad line (the slow path, taken for broken files)."""
    for line_number, line in enumerate(lines, start=2):
        if _INTEGER_LINE.fullmatch(line) is None:
            raise AnnotationError(path, line_number, f"expected an integer label, got {_show(line)}")
        if not _MIN_LABEL <= int(line) <= _MAX_LABEL:
            raise AnnotationError(path, line_number, f"label {int(line)} is outside {_MIN_LABEL}..{_MAX_LABEL}")
    # Reached only for odd but valid files, e.g. a form feed on a trailing blank line.
    return np.asarray([int(line) for line in lines], dtype=np.int64)


def _as_label_vector(path: Path, values: np.ndarray, low: int, what: str) -> np.ndarray:
    """Check that values are a non-empty 1-D integer array within low..7 and return it as int64."""
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{path}: {what} must be a non-empty 1-D array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{path}: {what} must be integers, got dtype {array.dtype}")
    bad = np.flatnonzero((array < low) | (array > _MAX_LABEL))
    if bad.size:
        frame = int(bad[0]) + 1
        raise ValueError(
            f"{path}: {what} is {array[frame - 1]} at frame {frame} ({frame_image_name(frame)}), "
            f"outside {low}..{_MAX_LABEL}"
        )
    return array.astype(np.int64, copy=False)


def _show(line: str, limit: int = 60) -> str:
    """Quote a line for an error message, shortened so a corrupt binary file cannot flood the terminal."""
    return repr(line if len(line) <= limit else line[:limit] + "...")
