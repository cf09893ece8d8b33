"""Shared fixtures: small corpora built through the real writer."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import make_record

from exprfusion.corpus import CorpusWriter


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    """A corpus of four videos: two train (one a _left/_right pair), one validation, one test."""
    root = tmp_path / "corpus"
    with CorpusWriter(root) as writer:
        writer.add(make_record("a_left", "train", seed=1))
        writer.add(make_record("a_right", "train", seed=2))
        writer.add(make_record("b", "validation", n=55, seed=3, fps=25.0))
        writer.add(make_record("c", "test", n=30, seed=4))
    return root
