"""Find the face in a video frame and crop it the way Aff-Wild2's ``cropped_aligned`` images are cropped.

**Detectors.** A detector is anything callable as ``detector(frame) -> FaceBox | None`` on an RGB ``uint8``
``[H, W, 3]`` frame (:class:`FaceDetector`). The default, ``haar``, is OpenCV's bundled frontal-face Haar cascade
(``cv2.data.haarcascades``): nothing is downloaded, it runs on a CPU, and it misses profiles and small or dark faces.
:func:`load_detector` also takes the name of a ``exprfusion.face_detectors`` entry point, or an import path
``package.module:factory``; the factory is called with no arguments and returns the detector. A stronger detector
(RetinaFace, as the Aff-Wild2 organisers used) plugs in that way on a GPU machine::

    # mypkg/retina.py
    from retinaface import RetinaFace            # any detector package
    from exprfusion.sources.extract.faces import FaceBox

    class Retina:
        def __call__(self, frame):
            faces = RetinaFace.detect_faces(frame[:, :, ::-1])   # BGR in
            if not isinstance(faces, dict) or not faces:
                return None
            x1, y1, x2, y2 = max(faces.values(), key=lambda f: f["score"])["facial_area"]
            return FaceBox(x1, y1, x2 - x1, y2 - y1)

    # exprfusion predict --video clip.mp4 --out labels.csv --face-detector mypkg.retina:Retina

**Crop.** The official ``cropped_aligned`` images are 112×112 RGB faces, detected and aligned by the organisers'
pipeline (a similarity transform on five landmarks, not published as code). What is matched here: a square crop
centred on the detected box, its side ``(1 + margin)`` times the box's longer side, resized to 112×112 (bilinear),
with black where the square reaches past the frame, as the official crops of faces at the image border show. What is
not: no landmark alignment (no in-plane rotation is undone), so tilted heads stay tilted.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from exprfusion.core.errors import InputError

CROP_SIZE = 112  # pixels per side of an Aff-Wild2 cropped_aligned image
CROP_MARGIN = 0.25  # the square's side is 1.25x the detected box's longer side: a Haar box stops at the brows/chin
DETECTOR_ENTRY_POINTS = "exprfusion.face_detectors"


@dataclass(frozen=True)
class FaceBox:
    """A face's bounding box in pixels: left, top, width, height."""

    x: int
    y: int
    width: int
    height: int

    def to_list(self) -> list[int]:
        """``[x, y, width, height]`` for JSON and CSV."""
        return [self.x, self.y, self.width, self.height]


@runtime_checkable
class FaceDetector(Protocol):
    """A face detector: the most prominent face of an RGB ``uint8 [H, W, 3]`` frame, or None."""

    def __call__(self, frame: np.ndarray) -> FaceBox | None: ...


class HaarFaceDetector:
    """OpenCV's bundled frontal-face Haar cascade; the largest detection wins.

    Args:
        min_size: the smallest face side in pixels; smaller candidates are ignored.
        scale_factor, min_neighbors: the cascade's search step and how many overlapping hits make a face.
    """

    def __init__(self, min_size: int = 24, scale_factor: float = 1.1, min_neighbors: int = 4) -> None:
        import cv2

        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise InputError(f"{path}: OpenCV's Haar cascade could not be loaded")
        self.min_size = min_size
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def __call__(self, frame: np.ndarray) -> FaceBox | None:
        """The largest face of the frame, or None."""
        import cv2

        grey = cv2.equalizeHist(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY))
        found = self.cascade.detectMultiScale(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(self.min_size,) * 2
        )
        if len(found) == 0:
            return None
        x, y, w, h = max(found, key=lambda box: int(box[2]) * int(box[3]))
        return FaceBox(int(x), int(y), int(w), int(h))


BUILT_IN_DETECTORS = {"haar": HaarFaceDetector}


def load_detector(name: str = "haar") -> FaceDetector:
    """A face detector by name: ``haar``, an ``exprfusion.face_detectors`` entry point, or ``module:factory``.

    Raises:
        InputError: the name is none of these, or what it names is not callable.
    """
    if name in BUILT_IN_DETECTORS:
        return BUILT_IN_DETECTORS[name]()
    found = [point for point in entry_points(group=DETECTOR_ENTRY_POINTS) if point.name == name]
    if found:
        factory = found[0].load()
    elif ":" in name:
        module, _, attribute = name.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as error:
            raise InputError(f"face detector {name!r} cannot be imported ({error})") from None
    else:
        known = ", ".join([*BUILT_IN_DETECTORS, *(p.name for p in entry_points(group=DETECTOR_ENTRY_POINTS))])
        raise InputError(f"unknown face detector {name!r}; expected one of {known}, or an import path module:factory")
    detector = factory()
    if not callable(detector):
        raise InputError(f"face detector {name!r} made a {type(detector).__name__}, which is not callable")
    return detector


def crop_square(box: FaceBox, margin: float = CROP_MARGIN) -> tuple[int, int, int]:
    """``(left, top, side)`` of the square centred on ``box``, its side ``(1 + margin)`` times the longer side."""
    side = max(1, round(max(box.width, box.height) * (1.0 + margin)))
    centre_x, centre_y = box.x + box.width / 2.0, box.y + box.height / 2.0
    return round(centre_x - side / 2.0), round(centre_y - side / 2.0), side


def crop_face(frame: np.ndarray, box: FaceBox, size: int = CROP_SIZE, margin: float = CROP_MARGIN) -> Image.Image:
    """The face of ``box`` as a ``size``×``size`` RGB image (the ``cropped_aligned`` convention, without landmarks).

    Parts of the square outside the frame are black.
    """
    left, top, side = crop_square(box, margin)
    height, width = frame.shape[:2]
    square = np.zeros((side, side, 3), dtype=np.uint8)
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + side, width), min(top + side, height)
    if x1 > x0 and y1 > y0:
        square[y0 - top : y1 - top, x0 - left : x1 - left] = frame[y0:y1, x0:x1, :3]
    return Image.fromarray(square).resize((size, size), Image.Resampling.BILINEAR)
