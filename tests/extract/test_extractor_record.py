"""The corpus's extractor record: stored in the manifest's metadata, read back, absent from older corpora."""

from __future__ import annotations

import hashlib

import pyarrow.parquet as pq
from factories import make_record, write_small_corpus

from exprfusion.data.corpus import Corpus
from exprfusion.data.corpus_writer import CorpusWriter

RECORD = {"visual": {"model": "m", "revision": "abc", "layer": None, "pooling": "pooler"}, "align": "nearest"}


def test_the_record_round_trips_through_the_manifest(tmp_path):
    with CorpusWriter(tmp_path / "corpus", extractor=RECORD) as writer:
        writer.add(make_record("v", "train"))
    assert Corpus(tmp_path / "corpus").extractor == RECORD
    metadata = pq.read_schema(tmp_path / "corpus" / "manifest.parquet").metadata
    assert b"extractor" in metadata


def test_a_corpus_without_a_record_keeps_its_old_bytes_and_reads_none(tmp_path):
    root = write_small_corpus(tmp_path / "old")
    corpus = Corpus(root)
    assert corpus.extractor is None
    written = (root / "manifest.parquet").read_bytes()
    corpus.manifest.reset_index(drop=True).to_parquet(tmp_path / "pandas.parquet", index=False)  # how it was written
    assert hashlib.sha256(written).digest() == hashlib.sha256((tmp_path / "pandas.parquet").read_bytes()).digest()
