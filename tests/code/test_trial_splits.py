"""A Ray worker reused across trials loads the corpus once, and notices a corpus rewritten at the same path."""

from __future__ import annotations

from factories import make_record, write_small_corpus

from exprfusion.corpus import CorpusWriter
from exprfusion.tune_trial import trial_splits


def test_the_splits_are_loaded_once_per_corpus_version(tmp_path):
    root = write_small_corpus(tmp_path / "corpus")
    train, validation = trial_splits(str(root))
    assert trial_splits(str(root))[0] is train  # the next trial on the same worker reuses the loaded split
    assert trial_splits(str(tmp_path / "corpus" / "."))[1] is validation  # the same folder, spelt differently

    with CorpusWriter(root, overwrite=True) as writer:
        writer.add(make_record("only", "train", n=70, seed=3))
        writer.add(make_record("v", "validation", n=20, seed=4))
    rewritten, _ = trial_splits(str(root))
    assert rewritten is not train
    assert rewritten.labels.shape[0] == 70
