"""Scale-out: media sharded over Ray workers give the same corpus, byte for byte, as one process."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from exprfusion.data.corpus import Corpus
from exprfusion.sources.extract.build import extract_corpus
from exprfusion.sources.extract.settings import RunOptions

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _file_hashes(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_ray_workers_write_the_same_bytes_as_one_process(tiny_tree, tmp_path):
    import ray

    single = extract_corpus(tiny_tree.sources, tiny_tree.settings(), tmp_path / "single" / "corpus")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        sharded = extract_corpus(
            tiny_tree.sources, tiny_tree.settings(), tmp_path / "ray" / "corpus", RunOptions(ray=True)
        )
        assert ray.is_initialized(), "a Ray that was running is left running"
    finally:
        ray.shutdown()
    assert sorted(sharded.extracted) == sorted(single.extracted) == sorted(tiny_tree.videos)
    assert _file_hashes(sharded.corpus) == _file_hashes(single.corpus)
    assert Corpus(sharded.corpus).extractor == Corpus(single.corpus).extractor
