"""Annotations against their videos' frame counts, the progress of a run in frames, the subject of each video."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from extract.media_factories import TinyTree
from typer.testing import CliRunner

from exprfusion.cli import app
from exprfusion.data.annotations import EXPR_HEADER
from exprfusion.data.corpus import Corpus
from exprfusion.sources.extract.build import extract_corpus
from exprfusion.sources.extract.plan import FRAME_TOLERANCE


def _lengthen(tree: TinyTree, video: str, extra: int) -> Path:
    """Add ``extra`` labels (class 0) at the end of a video's annotation; its path."""
    path = next(tree.sources.annotations.rglob(f"{video}.txt"))
    path.write_text(path.read_text() + "\n".join(["0"] * extra) + "\n")
    return path


def _extract_arguments(tree: TinyTree, out: Path) -> list[str]:
    sources = tree.sources
    return [
        "extract",
        "--annotations", str(sources.annotations),
        "--cropped-aligned", str(sources.cropped_aligned),
        "--videos", str(sources.videos),
        "--out", str(out),
        "--visual-model", str(tree.visual_model),
        "--audio-model", str(tree.audio_model),
        "--audio-chunk-seconds", "0.2",
        "--workers", "0",
    ]  # fmt: skip


def test_an_annotation_60_lines_longer_than_its_video_is_refused_naming_both_counts(tiny_tree, tmp_path):
    annotation = _lengthen(tiny_tree, "v1", 60)  # v1.mp4 has 24 frames
    result = CliRunner().invoke(app, _extract_arguments(tiny_tree, tmp_path / "corpus"))
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "v1.txt: 84 annotated frames" in message and "v1.mp4 has 24 frames" in message, message
    assert str(annotation.name) in message and not (tmp_path / "corpus").exists()


def test_a_short_annotation_is_refused_by_its_count_too(tiny_tree, tmp_path):
    path = next(tiny_tree.sources.annotations.rglob("v1.txt"))
    path.write_text(EXPR_HEADER + "\n" + "\n".join(["1"] * 12) + "\n")  # 12 labels for 24 frames
    (tiny_tree.sources.cropped_aligned / "v1" / "00024.jpg").unlink()  # no image past the annotation's end
    for number in range(13, 24):
        (tiny_tree.sources.cropped_aligned / "v1" / f"{number:05d}.jpg").unlink(missing_ok=True)
    result = CliRunner().invoke(app, _extract_arguments(tiny_tree, tmp_path / "corpus"))
    assert result.exit_code == 2 and "12 annotated frames" in result.output and "24 frames" in result.output


def test_a_few_frames_past_the_video_are_accepted_and_the_run_counts_each_frame_once(tiny_tree, tmp_path):
    """Control of the refusal: within the tolerance the corpus is written, the extra frames labelled. The progress
    callback ends at the corpus's frame count (each frame once, faces and audio being its two halves)."""
    _lengthen(tiny_tree, "v1", FRAME_TOLERANCE)
    calls: list[tuple[int, int]] = []
    report = extract_corpus(
        tiny_tree.sources, tiny_tree.settings(), tmp_path / "corpus", progress=lambda *c: calls.append(c)
    )
    corpus = Corpus(report.corpus)
    assert corpus.load("v1").labels.size == 24 + FRAME_TOLERANCE
    frames = sum(corpus.load(name).labels.size for name in corpus.videos())
    assert calls[-1] == (frames, frames) and calls[0][1] == frames
    assert all(b[0] >= a[0] for a, b in itertools.pairwise(calls))
    # Each annotated person is a subject of its own (the two of one media are two).
    assert {name: corpus.load(name).subject for name in corpus.videos()} == {name: name for name in corpus.videos()}
    assert np.unique([corpus.load(name).subject for name in ("pair_left", "pair_right")]).size == 2
