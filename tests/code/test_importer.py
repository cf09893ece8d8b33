"""Import of precomputed features plus a hand-written official annotation tree."""

from __future__ import annotations

import numpy as np
import pytest
from factories import write_official_tree

from exprfusion.annotations import AnnotationError
from exprfusion.corpus import Corpus, CorpusError
from exprfusion.extract.align import align_to_frames
from exprfusion.importer import import_corpus


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
