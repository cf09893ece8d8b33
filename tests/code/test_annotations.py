"""Tests for the official Aff-Wild2 EXPR file formats, on hand-written files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from exprfusion.data.annotations import (
    EXPR_HEADER,
    SUBMISSION_HEADER,
    AnnotationError,
    check_annotation_length,
    face_presence_from_cropped_aligned,
    media_name,
    read_annotation_tree,
    read_expr_annotation,
    read_submission,
    write_expr_annotation,
    write_submission,
)

HEADER = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"


def write_text(path: Path, text: str) -> Path:
    """Write text byte for byte (no newline translation) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def expect_annotation_error(path: Path, line: int, fragment: str) -> AnnotationError:
    """Read ``path`` and check that the error names the file, the line and the problem."""
    with pytest.raises(AnnotationError) as caught:
        read_expr_annotation(path)
    error = caught.value
    assert (error.path, error.line) == (path, line)
    assert f"{path.name}, line {line}:" in str(error)
    assert fragment in str(error)
    return error


def test_headers_match_the_official_format() -> None:
    assert EXPR_HEADER == HEADER
    assert SUBMISSION_HEADER == "image_location," + HEADER


def test_write_then_read_round_trips_including_ignore_labels(tmp_path: Path) -> None:
    labels = np.array([0, 1, 2, 3, 4, 5, 6, 7, -1, -1, 4], dtype=np.int8)
    path = tmp_path / "Train_Set" / "10-60-1280x720.txt"
    write_expr_annotation(path, labels)
    assert path.read_bytes() == (HEADER + "\n" + "\n".join(map(str, labels)) + "\n").encode()
    read = read_expr_annotation(path)
    assert read.dtype == np.int64
    np.testing.assert_array_equal(read, labels)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_windows_newlines_and_a_trailing_blank_line_are_accepted(tmp_path: Path) -> None:
    path = write_text(tmp_path / "v.txt", HEADER + "\r\n0\r\n-1\r\n7\r\n\r\n")
    np.testing.assert_array_equal(read_expr_annotation(path), [0, -1, 7])
    no_final_newline = write_text(tmp_path / "w.txt", HEADER + "\n5\n6")
    np.testing.assert_array_equal(read_expr_annotation(no_final_newline), [5, 6])
    with_byte_order_mark = write_text(tmp_path / "bom.txt", "\ufeff" + HEADER + "\n3\n")
    np.testing.assert_array_equal(read_expr_annotation(with_byte_order_mark), [3])


def test_wrong_header_names_line_1_and_shows_the_expected_header(tmp_path: Path) -> None:
    path = write_text(tmp_path / "v.txt", "Neutral,Anger,Disgust,Fear,Happy,Sad,Surprise,Other\n0\n")
    expect_annotation_error(path, 1, HEADER)


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        ("0\n1\nx\n2\n", 4, "'x'"),
        ("0\n1.0\n", 3, "'1.0'"),
        ("0\n\n2\n", 3, "expected an integer label"),  # a blank line inside would shift every later frame
        ("0\n1_0\n", 3, "'1_0'"),
        ("0\n1\n2\n8\n", 5, "label 8 is outside -1..7"),
        ("-2\n0\n", 2, "label -2 is outside -1..7"),
        ("3\n9\nx\n", 3, "label 9"),  # the first problem in file order wins
    ],
)
def test_bad_label_lines_name_the_line(tmp_path: Path, body: str, line: int, fragment: str) -> None:
    path = write_text(tmp_path / "v.txt", HEADER + "\n" + body)
    expect_annotation_error(path, line, fragment)


def test_empty_file_and_header_only_file_are_rejected(tmp_path: Path) -> None:
    expect_annotation_error(write_text(tmp_path / "empty.txt", ""), 1, "empty")
    expect_annotation_error(write_text(tmp_path / "header.txt", HEADER + "\n"), 2, "no frame labels")


def test_annotation_error_survives_pickling(tmp_path: Path) -> None:
    error = AnnotationError(tmp_path / "v.txt", 57, "label 9 is outside -1..7")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.line, str(copy)) == (error.path, 57, str(error))


def test_writing_rejects_labels_outside_the_range_naming_the_frame(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    with pytest.raises(ValueError, match=r"v\.txt: label is 8 at frame 3 \(00003\.jpg\)"):
        write_expr_annotation(path, np.array([0, 1, 8]))
    with pytest.raises(ValueError, match="integers"):
        write_expr_annotation(path, np.array([0.0, 1.0]))
    assert not path.exists()


def test_length_check_names_both_lengths_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    labels = np.zeros(100, dtype=np.int64)
    check_annotation_length(path, labels, 100)
    check_annotation_length(path, labels, 101, tolerance=1)
    with pytest.raises(AnnotationError, match=r"v\.txt, line 101: annotation has 100 .* 101 feature frames"):
        check_annotation_length(path, labels, 101)
    with pytest.raises(AnnotationError, match=r"v\.txt, line 100: annotation has 100 .* 98 feature frames"):
        check_annotation_length(path, labels, 98, tolerance=1)


def test_media_name_strips_the_person_suffix() -> None:
    assert media_name("10-60-1280x720_left") == "10-60-1280x720"
    assert media_name("video59_right") == "video59"
    assert media_name("118-30-640x480") == "118-30-640x480"
    assert media_name("left_hand") == "left_hand"


def make_official_tree(challenge: Path) -> None:
    """Two training and two validation videos, one training pair being a two-person video."""
    for relative in ("Train_Set/46-30-484x360_left.txt", "Train_Set/46-30-484x360_right.txt"):
        write_text(challenge / relative, HEADER + "\n0\n")
    for relative in ("Validation_Set/118-30-640x480.txt", "Validation_Set/video2.txt"):
        write_text(challenge / relative, HEADER + "\n1\n")
    write_text(challenge / "Validation_Set" / "README.md", "not an annotation")


@pytest.mark.parametrize("root_style", ["challenge_folder", "parent_folder"])
def test_annotation_tree_is_found_from_either_root(tmp_path: Path, root_style: str) -> None:
    challenge = tmp_path / "annotations" / "EXPR_Recognition_Challenge"
    make_official_tree(challenge)
    root = challenge if root_style == "challenge_folder" else challenge.parent
    tree = read_annotation_tree(root)
    assert list(tree) == ["train", "validation"]
    assert list(tree["train"]) == ["46-30-484x360_left", "46-30-484x360_right"]
    assert list(tree["validation"]) == ["118-30-640x480", "video2"]
    assert tree["validation"]["video2"] == challenge / "Validation_Set" / "video2.txt"
    assert {media_name(video) for video in tree["train"]} == {"46-30-484x360"}


def test_annotation_tree_errors_name_the_root_or_the_duplicate(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no split folder"):
        read_annotation_tree(tmp_path)
    make_official_tree(tmp_path)
    write_text(tmp_path / "Train_Set" / "video2.txt", HEADER + "\n1\n")
    with pytest.raises(ValueError, match="'video2' is annotated in two splits"):
        read_annotation_tree(tmp_path)


def test_face_presence_follows_the_cropped_images(tmp_path: Path) -> None:
    folder = tmp_path / "cropped_aligned" / "video1"
    folder.mkdir(parents=True)
    for number in (1, 2, 5, 6):
        (folder / f"{number:05d}.jpg").touch()
    (folder / "notes.txt").touch()
    present = face_presence_from_cropped_aligned(tmp_path / "cropped_aligned", "video1", 7)
    assert present.dtype == bool
    np.testing.assert_array_equal(present, [True, True, False, False, True, True, False])
    missing = face_presence_from_cropped_aligned(tmp_path / "cropped_aligned", "never_detected", 3)
    np.testing.assert_array_equal(missing, [False, False, False])


def test_face_image_beyond_the_frame_count_is_an_error_naming_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "video1"
    folder.mkdir()
    (folder / "00009.jpg").touch()
    with pytest.raises(ValueError, match=r"00009\.jpg: frame number 9 is outside 1\.\.8"):
        face_presence_from_cropped_aligned(tmp_path, "video1", 8)


def test_submission_lists_every_frame_including_those_without_a_face(tmp_path: Path) -> None:
    cropped = tmp_path / "cropped_aligned"
    (cropped / "b_left").mkdir(parents=True)
    (cropped / "b_left" / "00002.jpg").touch()  # frames 1 and 3 have no face
    predictions = {"b_left": np.array([4, 4, 0]), "a": np.array([7, 6])}
    path = tmp_path / "submission.csv"
    write_submission(path, predictions)
    assert path.read_text().splitlines() == [
        SUBMISSION_HEADER,
        "a/00001.jpg,7",
        "a/00002.jpg,6",
        "b_left/00001.jpg,4",
        "b_left/00002.jpg,4",
        "b_left/00003.jpg,0",
    ]
    assert face_presence_from_cropped_aligned(cropped, "b_left", 3).sum() == 1
    read = read_submission(path)
    assert list(read) == ["a", "b_left"]
    for video, labels in predictions.items():
        np.testing.assert_array_equal(read[video], labels)


def test_submission_rejects_an_ignore_prediction_naming_video_and_frame(tmp_path: Path) -> None:
    path = tmp_path / "submission.csv"
    with pytest.raises(ValueError, match=r"prediction of video v1 is -1 at frame 2 \(00002\.jpg\)"):
        write_submission(path, {"v1": np.array([3, -1, 3])})
    assert not path.exists()


@pytest.mark.parametrize(
    ("rows", "line", "fragment"),
    [
        ("v/00001.jpg,3\nv/00002.jpg,-1\n", 3, "class -1 is outside 0..7"),
        ("v/00001.jpg,3\nv/00003.jpg,1\n", 3, "expected frame 2 of video v, got 3"),
        ("v/00001.jpg,3\nw/00001.jpg,1\nv/00002.jpg,1\n", 4, "video v appears again"),
        ("v/00001.jpg;3\n", 2, "expected '<video>/00001.jpg,<class>'"),
    ],
)
def test_malformed_submission_names_the_line(tmp_path: Path, rows: str, line: int, fragment: str) -> None:
    path = write_text(tmp_path / "submission.csv", SUBMISSION_HEADER + "\n" + rows)
    with pytest.raises(AnnotationError, match=rf"submission\.csv, line {line}: ") as caught:
        read_submission(path)
    assert fragment in str(caught.value)
