"""The corpus layout: writer, memory-mapped reader, manifest, hashes, atomicity."""

from __future__ import annotations

import numpy as np
import pytest
from factories import make_record

from exprfusion.data.annotations import read_expr_annotation
from exprfusion.data.corpus import MANIFEST_COLUMNS, Corpus, CorpusError, annotation_path, feature_path
from exprfusion.data.corpus_writer import CorpusWriter


def test_round_trip_preserves_every_array(small_corpus):
    corpus = Corpus(small_corpus)
    original = make_record("b", "validation", n=55, seed=3, fps=25.0)
    loaded = corpus.load("b")
    assert isinstance(loaded.visual, np.memmap)
    np.testing.assert_array_equal(loaded.visual, original.visual)
    np.testing.assert_array_equal(loaded.audio, original.audio)
    np.testing.assert_array_equal(loaded.face_mask, original.face_mask)
    np.testing.assert_array_equal(loaded.labels, original.labels)
    assert loaded.fps == 25.0 and loaded.split == "validation"
    assert loaded.visual.dtype == np.float16 and loaded.face_mask.dtype == bool


def test_manifest_columns_and_statistics(small_corpus):
    corpus = Corpus(small_corpus)
    manifest = corpus.manifest
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    assert corpus.videos("train") == ["a_left", "a_right"]
    row = manifest.loc["a_left"]
    record = make_record("a_left", seed=1)
    assert row["media"] == "a" and row["n_frames"] == 40
    assert row["n_labelled"] == int((record.labels >= 0).sum())
    assert row["count_Neutral"] == int((record.labels == 0).sum())
    assert row["face_rate"] == pytest.approx(record.face_mask.mean())
    assert row["n_labelled_no_face"] == int(((record.labels >= 0) & ~record.face_mask).sum())
    assert corpus.visual_dim == 8 and corpus.audio_dim == 6


def test_annotations_are_official_files_and_test_split_has_none(small_corpus):
    labels = read_expr_annotation(annotation_path(small_corpus, "train", "a_left"))
    np.testing.assert_array_equal(labels, make_record("a_left", seed=1).labels)
    assert not (small_corpus / "annotations" / "Test_Set").exists()
    assert (Corpus(small_corpus).load("c").labels == -1).all()


def test_verify_detects_changed_content(small_corpus):
    corpus = Corpus(small_corpus)
    assert corpus.verify() == []
    path = feature_path(small_corpus, "audio", "b")
    audio = np.load(path)
    audio[0, 0] += 1
    np.save(path, audio)
    problems = corpus.verify()
    assert len(problems) == 1 and problems[0].startswith("b:")


def test_same_content_gives_same_hash(tmp_path):
    hashes = []
    for name in ("one", "two"):
        with CorpusWriter(tmp_path / name) as writer:
            writer.add(make_record("v", seed=7))
        hashes.append(Corpus(tmp_path / name).content_hash())
    assert hashes[0] == hashes[1]


def test_failed_write_leaves_previous_corpus_untouched(small_corpus):
    before = Corpus(small_corpus).manifest.copy()
    with pytest.raises(RuntimeError), CorpusWriter(small_corpus, overwrite=True) as writer:
        writer.add(make_record("new", seed=9))
        raise RuntimeError("interrupted")
    after = Corpus(small_corpus)
    assert after.manifest.equals(before)
    assert not list(small_corpus.parent.glob(".corpus.partial"))


def test_unclosed_writer_never_looks_complete(tmp_path):
    writer = CorpusWriter(tmp_path / "c")
    writer.add(make_record("v"))
    with pytest.raises(CorpusError, match=r"manifest\.parquet is missing"):
        Corpus(tmp_path / "c")


def test_existing_corpus_needs_overwrite(small_corpus):
    with pytest.raises(CorpusError, match="already exists"):
        CorpusWriter(small_corpus)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"split": "dev"}, "split 'dev'"),
        ({"fps": 0.0}, "fps must be positive"),
        ({"labels": np.full(40, 8)}, "label 8 at frame 1"),
        ({"visual": np.zeros((39, 8), np.float16)}, r"visual has shape \(39, 8\)"),
        ({"face_mask": np.ones(41, bool)}, "face_mask has shape"),
    ],
)
def test_invalid_records_are_rejected_by_name(tmp_path, change, message):
    import dataclasses

    record = dataclasses.replace(make_record("bad"), **change)
    writer = CorpusWriter(tmp_path / "c")
    with pytest.raises(CorpusError, match=message) as caught:
        writer.add(record)
    assert "'bad'" in str(caught.value)


def test_duplicate_video_is_rejected(tmp_path):
    writer = CorpusWriter(tmp_path / "c")
    writer.add(make_record("v"))
    with pytest.raises(CorpusError, match="already added"):
        writer.add(make_record("v"))


def test_unknown_video_and_missing_file_are_named(small_corpus):
    corpus = Corpus(small_corpus)
    with pytest.raises(CorpusError, match="'zzz' is not in"):
        corpus.load("zzz")
    feature_path(small_corpus, "visual", "b").unlink()
    with pytest.raises(CorpusError, match=r"visual/b\.npy is missing"):
        corpus.load("b")
