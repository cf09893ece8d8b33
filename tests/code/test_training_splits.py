"""A process that trains run after run (a reused Ray worker) loads the corpus once, and notices a rewrite."""

from __future__ import annotations

from factories import make_record, write_small_corpus

from exprfusion.data.corpus_writer import CorpusWriter
from exprfusion.data.split_tensors import training_splits


def test_the_splits_are_loaded_once_per_corpus_version(tmp_path):
    root = write_small_corpus(tmp_path / "corpus")
    train, validation = training_splits(str(root))
    assert training_splits(str(root))[0] is train  # the next trial on the same worker reuses the loaded split
    assert training_splits(str(tmp_path / "corpus" / "."))[1] is validation  # the same folder, spelt differently

    with CorpusWriter(root, overwrite=True) as writer:
        writer.add(make_record("only", "train", n=70, seed=3))
        writer.add(make_record("v", "validation", n=20, seed=4))
    rewritten, _ = training_splits(str(root))
    assert rewritten is not train
    assert rewritten.labels.shape[0] == 70
