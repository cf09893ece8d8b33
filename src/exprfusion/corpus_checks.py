"""Checks a corpus must pass before anything trains on it: required splits, consistent widths, intact files.

These run in the DVC ``validate`` stage; every problem names the video it concerns, and the report is written
whether the corpus passes or not.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from exprfusion.atomic import write_json
from exprfusion.corpus import FEATURE_KINDS, Corpus, CorpusError, feature_path
from exprfusion.errors import InputError
from exprfusion.labels import SPLITS


def _split_problems(corpus: Corpus, required_splits: Sequence[str]) -> list[str]:
    """Required splits that are missing or have no labelled frame."""
    problems = []
    for split in required_splits:
        if split not in SPLITS:
            raise InputError(f"validate.required_splits: {split!r} is not one of {SPLITS}")
        rows = corpus.manifest[corpus.manifest["split"] == split]
        if rows.empty:
            problems.append(f"split {split!r}: no videos")
        elif split != "test" and int(rows["n_labelled"].sum()) == 0:
            problems.append(f"split {split!r}: no labelled frames")
    return problems


def _width_problems(corpus: Corpus) -> list[str]:
    """Videos whose feature widths differ from the width most videos have."""
    problems = []
    for column in ("visual_dim", "audio_dim"):
        widths = corpus.manifest[column]
        usual = int(widths.mode().iloc[0])
        for video, width in widths[widths != usual].items():
            problems.append(f"{video}: {column} is {width}, other videos have {usual}")
    return problems


def _shape_problems(corpus: Corpus) -> list[str]:
    """Videos whose arrays on disk disagree with their manifest row (frame count, width)."""
    problems = []
    for video in corpus.videos():
        row = corpus.manifest.loc[video]
        if not all(feature_path(corpus.root, kind, video).is_file() for kind in FEATURE_KINDS):
            continue  # reported by the hash check, which lists the missing files
        try:
            record = corpus.load(video)
        except CorpusError as error:
            problems.append(f"{video}: {error}")
            continue
        expected = {"visual": (row["n_frames"], row["visual_dim"]), "audio": (row["n_frames"], row["audio_dim"])}
        for name, shape in expected.items():
            actual = getattr(record, name).shape
            if tuple(actual) != tuple(int(v) for v in shape):
                problems.append(f"{video}: {name} has shape {tuple(actual)}, the manifest says {shape}")
    return problems


def check_corpus(
    root: str | os.PathLike[str],
    report_path: str | os.PathLike[str],
    *,
    required_splits: Sequence[str] = ("train", "validation"),
    verify_hashes: bool = True,
) -> dict[str, Any]:
    """Check a corpus and write a JSON report; raise ``CorpusError`` naming the videos if any check fails.

    Args:
        root: the corpus folder.
        report_path: where to write the report (written on success and on failure).
        required_splits: splits that must hold videos (and labelled frames, except ``test``).
        verify_hashes: recompute every video's content hash against the manifest (``Corpus.verify``).

    Returns:
        The report: ``{"ok", "corpus", "corpus_hash", "n_videos", "splits", "visual_dim", "audio_dim",
        "hashes_verified", "problems"}``.
    """
    corpus = Corpus(root)
    problems = _split_problems(corpus, required_splits) + _width_problems(corpus) + _shape_problems(corpus)
    if verify_hashes:
        problems += corpus.verify()
    manifest = corpus.manifest
    splits = {
        split: {"videos": len(rows), "frames": int(rows["n_frames"].sum()), "labelled": int(rows["n_labelled"].sum())}
        for split, rows in manifest.groupby("split")
    }
    report = {
        "ok": not problems,
        "corpus": str(Path(root)),
        "corpus_hash": corpus.content_hash(),
        "n_videos": len(corpus),
        "splits": splits,
        "visual_dim": sorted(int(v) for v in manifest["visual_dim"].unique()),
        "audio_dim": sorted(int(v) for v in manifest["audio_dim"].unique()),
        "hashes_verified": verify_hashes,
        "problems": problems,
    }
    write_json(report_path, report)
    if problems:
        listed = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise CorpusError(f"{root}: {len(problems)} problem(s): {listed} (report: {report_path})")
    return report
