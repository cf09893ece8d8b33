"""Face detection and the cropped_aligned-style crop."""

from __future__ import annotations

import numpy as np
import pytest
from video.video_factories import FACE_AT, FACE_SIZE, face_frame

from exprfusion.core.errors import InputError
from exprfusion.sources.extract.faces import FaceBox, HaarFaceDetector, crop_face, crop_square, load_detector


def test_haar_finds_the_drawn_face_and_nothing_on_the_background():
    detector = load_detector("haar")
    box = detector(face_frame(0, blank=False))
    assert box is not None
    centre = (box.x + box.width / 2, box.y + box.height / 2)
    drawn_centre = (FACE_AT[0] + FACE_SIZE / 2, FACE_AT[1] + FACE_SIZE / 2)
    assert np.hypot(centre[0] - drawn_centre[0], centre[1] - drawn_centre[1]) < FACE_SIZE / 4
    assert detector(face_frame(0, blank=True)) is None


def test_crop_is_a_square_around_the_box_resized_to_112_with_black_outside():
    # box 40x20 at (10, 30): longer side 40, x1.25 = 50; centre (30, 40) -> square from (5, 15)
    assert crop_square(FaceBox(10, 30, 40, 20)) == (5, 15, 50)
    frame = np.full((60, 60, 3), 200, np.uint8)
    crop = np.asarray(crop_face(frame, FaceBox(-10, -10, 40, 40)))  # square (-15, -15) side 50: 15 px off-frame
    assert crop.shape == (112, 112, 3)
    assert crop[:25, :25].max() == 0 and crop[-30:, -30:].min() == 200  # 15/50 of 112 = 33.6 px black


def test_detectors_load_by_import_path_and_unknown_names_are_refused():
    assert isinstance(load_detector("exprfusion.sources.extract.faces:HaarFaceDetector"), HaarFaceDetector)
    with pytest.raises(InputError, match="unknown face detector 'retina'"):
        load_detector("retina")
    with pytest.raises(InputError, match="cannot be imported"):
        load_detector("nowhere.module:Detector")
