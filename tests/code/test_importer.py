"""Import of precomputed features plus a hand-written official annotation tree."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from factories import write_official_tree

from exprfusion.core.errors import InputError, MissingInputError
from exprfusion.data.annotations import EXPR_HEADER, AnnotationError
from exprfusion.data.corpus import Corpus, CorpusError
from exprfusion.sources.extract.align import align_to_frames
from exprfusion.sources.importer import ImportSources, import_corpus


def test_import_from_official_tree(tmp_path):
    sources = write_official_tree(tmp_path / "raw")
    import_corpus(sources, tmp_path / "corpus")
    corpus = Corpus(tmp_path / "corpus")
    assert sorted(corpus.videos("train")) == ["pair_left", "pair_right", "v1"]
    assert corpus.videos("validation") == ["w"]
    v1 = corpus.load("v1")
    assert v1.face_mask.tolist() == [True, True, False, False] + [True] * 8
    assert not v1.visual[2:4].any(), "rows of frames with no face are zeros"
    source_audio = np.load(tmp_path / "raw" / "audio" / "v1.npy")
    np.testing.assert_array_equal(v1.audio, align_to_frames(source_audio, 12).astype(np.float16))
    left, right = corpus.load("pair_left"), corpus.load("pair_right")
    assert left.media == right.media == "pair"
    np.testing.assert_array_equal(left.audio, right.audio)
    assert left.face_mask.all() and not right.face_mask.any()
    assert corpus.manifest.loc["w", "fps"] == 7.5 and corpus.manifest.loc["pair_left", "fps"] == 25.0


def test_length_mismatch_names_the_annotation_file(tmp_path):
    sources = write_official_tree(tmp_path / "raw")
    np.save(tmp_path / "raw" / "visual" / "v1.npy", np.ones((11, 5), np.float32))
    with pytest.raises(AnnotationError, match=r"v1\.txt.*12.*11|v1\.txt.*11.*12"):
        import_corpus(sources, tmp_path / "corpus")
    assert not (tmp_path / "corpus").exists(), "a failed import writes nothing"


def test_missing_audio_is_an_error_unless_allowed(tmp_path):
    sources = write_official_tree(tmp_path / "raw")
    (tmp_path / "raw" / "audio" / "w.npy").unlink()
    with pytest.raises(CorpusError, match="no audio features for 'w'"):
        import_corpus(sources, tmp_path / "corpus")
    import dataclasses

    import_corpus(dataclasses.replace(sources, allow_missing_audio=True), tmp_path / "corpus")
    w = Corpus(tmp_path / "corpus").load("w")
    assert not w.audio_mask.any() and w.audio.shape == (9, 3)


def test_bad_features_are_named(tmp_path):
    sources = write_official_tree(tmp_path / "raw")
    bad = np.ones((12, 5), np.float32)
    bad[3, 1] = np.nan
    np.save(tmp_path / "raw" / "visual" / "v1.npy", bad)
    with pytest.raises(CorpusError, match=r"v1\.npy: visual features contain NaN"):
        import_corpus(sources, tmp_path / "corpus")


def test_bad_fps_table_names_the_row(tmp_path):
    sources = write_official_tree(tmp_path / "raw")
    sources.fps_csv.write_text("media,fps\nv1,30\npair,fast\n")
    with pytest.raises(CorpusError, match=r"fps\.csv, row 3"):
        import_corpus(sources, tmp_path / "corpus")


def test_linear_alignment_interpolates():
    source = np.array([[0.0], [10.0]], dtype=np.float32)
    aligned = align_to_frames(source, 4, method="linear")
    np.testing.assert_allclose(aligned[:, 0], [0.0, 5.0, 10.0, 10.0])
    np.testing.assert_array_equal(align_to_frames(source, 4)[:, 0], [0, 0, 10, 10])


# ---- every way an import can fail ------------------------------------------------------------------------------
# Each case breaks one input of the official tree of ``write_official_tree`` (v1: 12 frames, pair_left/_right: 10,
# w: 9; audio per media: v1 20 rows, pair 17, w 9; 5 visual and 3 audio dims) and names the error it must give.
# The videos import in the order pair_left, pair_right, v1 (train), then w (validation).


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def _annotation(raw: Path, video: str = "v1", split: str = "Train_Set") -> Path:
    return raw / "EXPR_Recognition_Challenge" / split / f"{video}.txt"


def _labels(n: int, bad_line: int | None = None, bad: str = "") -> str:
    """Header plus ``n`` label lines of 0; line ``bad_line`` (1-based, header = line 1) replaced by ``bad``."""
    lines = [EXPR_HEADER] + ["0"] * n
    if bad_line is not None:
        lines[bad_line - 1] = bad
    return "\n".join(lines) + "\n"


Breaker = Callable[[Path, ImportSources], ImportSources]


def _unchanged(change: Callable[[Path], object]) -> Breaker:
    """A breaker that edits files under the raw folder and keeps the sources as they are."""

    def breaker(raw: Path, sources: ImportSources) -> ImportSources:
        change(raw)
        return sources

    return breaker


def _sources(**changes: object) -> Breaker:
    """A breaker that changes the sources (paths are taken relative to the raw folder)."""

    def breaker(raw: Path, sources: ImportSources) -> ImportSources:
        values = {k: raw / v if isinstance(v, str) and k != "align" else v for k, v in changes.items()}
        return dataclasses.replace(sources, **values)

    return breaker


def _face_masks(arrays: dict[str, np.ndarray]) -> Breaker:
    """Use a --face-mask folder holding ``arrays`` (every other video gets a valid mask)."""

    def breaker(raw: Path, sources: ImportSources) -> ImportSources:
        folder = raw / "face_mask"
        folder.mkdir()
        for video, n in (("pair_left", 10), ("pair_right", 10), ("v1", 12), ("w", 9)):
            if video in arrays:
                if arrays[video] is not None:
                    np.save(folder / f"{video}.npy", arrays[video])
            else:
                np.save(folder / f"{video}.npy", np.ones(n, bool))
        return dataclasses.replace(sources, face_mask=folder, cropped_aligned=None)

    return breaker


def _save(relative: str, array: np.ndarray) -> Callable[[Path], None]:
    return lambda raw: np.save(raw / relative, array)


def _nan_rows(n: int, dims: int) -> np.ndarray:
    array = np.ones((n, dims), np.float32)
    array[2, 1] = np.nan
    return array


def _in_two_splits(raw: Path) -> None:
    shutil.copy(_annotation(raw, "w", "Validation_Set"), _annotation(raw, "w", "Train_Set"))


def _no_annotation_files(raw: Path) -> None:
    for path in (raw / "EXPR_Recognition_Challenge").rglob("*.txt"):
        path.unlink()


def _no_audio_files(raw: Path) -> None:
    for path in (raw / "audio").glob("*.npy"):
        path.unlink()


def _labelled_test_video(raw: Path) -> None:
    """A Test_Set annotation that holds labels (the challenge publishes none for the test set)."""
    _annotation(raw, "t1", "Test_Set").parent.mkdir()
    _write(_annotation(raw, "t1", "Test_Set"), _labels(4))
    np.save(raw / "visual" / "t1.npy", np.ones((4, 5), np.float32))
    np.save(raw / "audio" / "t1.npy", np.ones((4, 3), np.float32))


def _image_beyond_the_last_frame(raw: Path) -> None:
    (raw / "cropped_aligned" / "v1" / "00013.jpg").touch()


IMPORT_ERRORS: dict[str, tuple[Breaker, type[Exception], str]] = {
    # the annotation tree
    "no annotation folder": (_sources(annotations="nowhere"), MissingInputError, r"raw/nowhere: not found"),
    "no split folder": (
        _unchanged(lambda raw: shutil.rmtree(raw / "EXPR_Recognition_Challenge")),
        MissingInputError,
        r"raw: no split folder \(Train_Set, Validation_Set, Test_Set\)",
    ),
    "no annotation files": (_unchanged(_no_annotation_files), CorpusError, r"raw: no annotation files found"),
    "video in two splits": (
        _unchanged(_in_two_splits),
        InputError,
        r"'w' is annotated in two splits: .*w\.txt and .*w\.txt",
    ),
    # one annotation file
    "empty annotation": (
        _unchanged(lambda raw: _write(_annotation(raw), "")),
        AnnotationError,
        r"v1\.txt, line 1: file is empty",
    ),
    "wrong header": (
        _unchanged(lambda raw: _write(_annotation(raw), _labels(12, 1, "Neutral,Anger"))),
        AnnotationError,
        r"v1\.txt, line 1: expected the header",
    ),
    "header only": (
        _unchanged(lambda raw: _write(_annotation(raw), EXPR_HEADER + "\n")),
        AnnotationError,
        r"v1\.txt, line 2: no frame labels",
    ),
    "label not an integer": (
        _unchanged(lambda raw: _write(_annotation(raw), _labels(12, 5, "happy"))),
        AnnotationError,
        r"v1\.txt, line 5: expected an integer label, got 'happy'",
    ),
    "label out of range": (
        _unchanged(lambda raw: _write(_annotation(raw), _labels(12, 7, "8"))),
        AnnotationError,
        r"v1\.txt, line 7: label 8 is outside -1\.\.7",
    ),
    "not UTF-8": (
        _unchanged(lambda raw: _annotation(raw).write_bytes(EXPR_HEADER.encode() + b"\n0\n\xff\n")),
        AnnotationError,
        r"v1\.txt, line 3: not UTF-8",
    ),
    # frame counts: 12 labels for v1
    "fewer visual rows than labels": (
        _unchanged(_save("visual/v1.npy", np.ones((11, 5), np.float32))),
        AnnotationError,
        r"v1\.txt, line 13: annotation has 12 frame labels but there are 11 feature frames",
    ),
    "more visual rows than labels": (
        _unchanged(_save("visual/v1.npy", np.ones((13, 5), np.float32))),
        AnnotationError,
        r"v1\.txt, line 13: annotation has 12 frame labels but there are 13 feature frames",
    ),
    # visual features
    "visual file missing": (
        _unchanged(lambda raw: (raw / "visual" / "v1.npy").unlink()),
        MissingInputError,
        r"visual/v1\.npy: visual features are missing",
    ),
    "visual folder missing": (_sources(visual="no_visual"), MissingInputError, r"raw/no_visual: not found"),
    "visual not a .npy file": (
        _unchanged(lambda raw: _write(raw / "visual" / "v1.npy", "not numpy")),
        CorpusError,
        r"visual/v1\.npy: not a valid \.npy file",
    ),
    "visual 1-d": (
        _unchanged(_save("visual/v1.npy", np.ones(12, np.float32))),
        CorpusError,
        r"visual/v1\.npy: visual features must be a 2-d float array.*, got float32 \(12,\)",
    ),
    "visual integers": (
        _unchanged(_save("visual/v1.npy", np.ones((12, 5), np.int32))),
        CorpusError,
        r"visual/v1\.npy: visual features must be a 2-d float array.*, got int32 \(12, 5\)",
    ),
    "visual without columns": (
        _unchanged(_save("visual/v1.npy", np.ones((12, 0), np.float32))),
        CorpusError,
        r"visual/v1\.npy: 0 visual dims, other files have 5",
    ),
    "visual NaN": (
        _unchanged(_save("visual/v1.npy", _nan_rows(12, 5))),
        CorpusError,
        r"visual/v1\.npy: visual features contain NaN",
    ),
    # audio features
    "audio missing": (
        _unchanged(lambda raw: (raw / "audio" / "w.npy").unlink()),
        CorpusError,
        r"audio: no audio features for 'w' \(looked for w\.npy and w\.npy\); pass --allow-missing-audio",
    ),
    "no audio files": (_unchanged(_no_audio_files), CorpusError, r"audio: no audio feature files"),
    "audio folder missing": (_sources(audio="no_audio"), MissingInputError, r"raw/no_audio: not found"),
    "audio 1-d": (
        _unchanged(_save("audio/v1.npy", np.ones(20, np.float32))),
        CorpusError,
        r"audio/v1\.npy: audio features must be a 2-d float array",
    ),
    "audio NaN": (
        _unchanged(_save("audio/v1.npy", _nan_rows(20, 3))),
        CorpusError,
        r"audio/v1\.npy: audio features contain NaN",
    ),
    "audio width differs": (
        _unchanged(_save("audio/w.npy", np.ones((9, 4), np.float32))),
        CorpusError,
        r"audio/w\.npy: 4 audio dims, other files have 3",
    ),
    "audio without rows": (
        _unchanged(_save("audio/v1.npy", np.ones((0, 3), np.float32))),
        CorpusError,
        r"audio/v1\.npy: audio features .*(no rows|at least one row)",
    ),
    "unknown align mode": (
        _sources(align="cubic"),
        InputError,
        r"ImportSources\.align: must be one of 'nearest' or 'linear', got 'cubic'",
    ),
    # face presence
    "face mask file missing": (
        _face_masks({"v1": None}),
        MissingInputError,
        r"face_mask/v1\.npy: face mask is missing",
    ),
    "face mask too short": (
        _face_masks({"v1": np.ones(11, bool)}),
        CorpusError,
        r"face_mask/v1\.npy: face mask has shape \(11,\), expected \[12\]",
    ),
    "labels in a test annotation": (
        _unchanged(_labelled_test_video),
        CorpusError,
        r"'t1': test-split videos carry no labels",
    ),
    "face image beyond the last frame": (
        _unchanged(_image_beyond_the_last_frame),
        InputError,
        r"v1/00013\.jpg: frame number 13 is outside 1\.\.12",
    ),
    # the fps table
    "fps table missing": (
        _unchanged(lambda raw: (raw / "fps.csv").unlink()),
        MissingInputError,
        r"raw/fps\.csv: .*not found",
    ),
    "fps table empty": (
        _unchanged(lambda raw: _write(raw / "fps.csv", "")),
        CorpusError,
        r"fps\.csv: not a readable CSV table",
    ),
    "fps table not text": (
        _unchanged(lambda raw: (raw / "fps.csv").write_bytes(b"media,fps\n\xff\xfe,30\n")),
        CorpusError,
        r"fps\.csv: not a readable CSV table",
    ),
    "fps table without fps column": (
        _unchanged(lambda raw: _write(raw / "fps.csv", "media,rate\nv1,30\n")),
        CorpusError,
        r"fps\.csv: needs columns 'video' \(or 'media'\) and 'fps'",
    ),
    "fps not a number": (
        _unchanged(lambda raw: _write(raw / "fps.csv", "media,fps\nv1,30\npair,fast\n")),
        CorpusError,
        r"fps\.csv, row 3: fps 'fast' is not a positive number",
    ),
    "fps not positive": (
        _unchanged(lambda raw: _write(raw / "fps.csv", "media,fps\nv1,30\npair,25\nw,-7.5\n")),
        CorpusError,
        r"fps\.csv, row 4: fps -7\.5 is not a positive number",
    ),
}


@pytest.mark.parametrize("case", list(IMPORT_ERRORS))
def test_each_import_error_names_its_input_and_writes_nothing(tmp_path, case):
    breaker, error, message = IMPORT_ERRORS[case]
    raw = tmp_path / "raw"
    sources = write_official_tree(raw)
    with pytest.raises(error, match=message) as raised:
        import_corpus(breaker(raw, sources), tmp_path / "corpus")
    assert isinstance(raised.value, InputError), "bad input is an InputError: one line and exit status 2"
    assert not (tmp_path / "corpus").exists(), "a failed import writes nothing"
    assert not (tmp_path / ".corpus.partial").exists(), "nor leaves its staging folder"


def test_an_existing_corpus_is_neither_replaced_nor_damaged_by_an_import(tmp_path):
    sources = write_official_tree(tmp_path / "raw")
    import_corpus(sources, tmp_path / "corpus")
    before = {p: p.read_bytes() for p in (tmp_path / "corpus").rglob("*") if p.is_file()}
    with pytest.raises(CorpusError, match=r"corpus already exists and is not empty; pass overwrite=True"):
        import_corpus(sources, tmp_path / "corpus")
    (tmp_path / "raw" / "visual" / "w.npy").unlink()
    with pytest.raises(MissingInputError, match=r"w\.npy: visual features are missing"):
        import_corpus(sources, tmp_path / "corpus", overwrite=True)
    after = {p: p.read_bytes() for p in (tmp_path / "corpus").rglob("*") if p.is_file()}
    assert after == before


def test_a_visual_width_unlike_the_others_stops_the_import(tmp_path):
    """Audio widths are checked against each other; visual widths must be too, or the corpus cannot be read."""
    sources = write_official_tree(tmp_path / "raw")
    np.save(tmp_path / "raw" / "visual" / "v1.npy", np.ones((12, 6), np.float32))  # the others have 5
    with pytest.raises(InputError, match=r"visual/v1\.npy: 6 visual dims, other files have 5"):
        import_corpus(sources, tmp_path / "corpus")
    assert not (tmp_path / "corpus").exists(), "a failed import writes nothing"
