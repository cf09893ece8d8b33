"""Checks a corpus must pass before anything trains on it: the ``validate`` stage and ``exprfusion validate``.

One pass over every video's files gives a table of per-video statistics (:mod:`exprfusion.data.corpus_statistics`); the
Great
Expectations suite of :mod:`exprfusion.data.expectations` runs on that table: files present and readable, lengths and
feature widths, finite values, labels in -1..7, face rates within bounds, every class in train, no video in two
splits, no duplicate content, content hashes equal to the manifest's. The JSON report and the HTML data docs are
written whether the corpus passes or not; a failure names each video and the expectations it breaks.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from exprfusion.core.atomic import write_json
from exprfusion.core.labels import SPLITS
from exprfusion.core.settings import Flag, settings
from exprfusion.data.corpus import Corpus, CorpusError
from exprfusion.data.corpus_statistics import video_statistics
from exprfusion.data.expectations import ExpectationOutcome, run_corpus_suite


@settings(frozen=True)
class ValidationSettings:
    """What the corpus is checked against (the ``validate`` section of ``params.yaml``).

    Attributes:
        required_splits: splits that must hold videos, and labelled frames except ``test``.
        verify_hashes: recompute every video's content hash against the manifest.
        min_face_rate: lowest share of frames with a face a video may have (a video with almost no face usually
            means a face-detection or import failure, e.g. a missing ``cropped_aligned`` folder).
        max_face_rate: highest share of frames with a face a video may have.
        min_class_frames: labelled train frames every class must have; 0 turns the check off (only for tiny test
            corpora, where the rare classes may have no segment at all).
    """

    required_splits: tuple[Literal[SPLITS], ...] = ("train", "validation")
    verify_hashes: Flag = True
    min_face_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.01
    max_face_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    min_class_frames: Annotated[int, Field(ge=0)] = 1

    def __post_init__(self) -> None:
        if self.min_face_rate > self.max_face_rate:
            raise ValueError(
                f"min_face_rate ({self.min_face_rate}) must not exceed max_face_rate ({self.max_face_rate})"
            )


def validate_corpus(
    root: str | os.PathLike[str],
    report_path: str | os.PathLike[str] | None = None,
    *,
    data_docs: str | os.PathLike[str] | None = None,
    settings: ValidationSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Validate a corpus; write the JSON report and the data docs; raise ``CorpusError`` naming each failing video.

    Args:
        root: the corpus folder.
        report_path: where to write the JSON report (on success and on failure); None: no report file.
        data_docs: folder for the GX data docs site (``index.html``); None: no docs.
        settings: the checks' parameters (default: :class:`ValidationSettings`'s defaults).
        progress: called as ``progress(done, total)`` while the videos are scanned.

    Returns:
        The report: ``{"ok", "corpus", "corpus_hash", "n_videos", "splits", "visual_dim", "audio_dim",
        "hashes_verified", "problems", "expectations", "data_docs"}``; ``problems`` has one line per failing video
        (or corpus-wide failure) naming what it breaks.
    """
    settings = settings or ValidationSettings()
    corpus = Corpus(root)
    stats = video_statistics(corpus, verify_hashes=settings.verify_hashes, progress=progress)
    outcomes = run_corpus_suite(
        stats,
        required_splits=settings.required_splits,
        face_rate_bounds=(settings.min_face_rate, settings.max_face_rate),
        min_class_frames=settings.min_class_frames,
        check_hashes=settings.verify_hashes,
        data_docs=data_docs,
    )
    problems = _problems(outcomes)
    manifest = corpus.manifest
    report = {
        "ok": not problems,
        "corpus": str(Path(root)),
        "corpus_hash": corpus.content_hash(),
        "n_videos": len(corpus),
        "splits": {
            split: {
                "videos": len(rows),
                "frames": int(rows["n_frames"].sum()),
                "labelled": int(rows["n_labelled"].sum()),
            }
            for split, rows in manifest.groupby("split")
        },
        "visual_dim": sorted(int(v) for v in manifest["visual_dim"].unique()),
        "audio_dim": sorted(int(v) for v in manifest["audio_dim"].unique()),
        "hashes_verified": settings.verify_hashes,
        "problems": problems,
        "expectations": [
            {
                "description": o.description,
                "expectation": o.expectation,
                "columns": o.columns,
                "success": o.success,
                "failed_videos": o.failed,
                **({"observed": o.observed} if o.observed else {}),
            }
            for o in outcomes
        ],
        "data_docs": str(Path(data_docs) / "index.html") if data_docs is not None else None,
    }
    if report_path is not None:
        write_json(report_path, report)
    if problems:
        listed = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        where = ", ".join(str(p) for p in (report_path, report["data_docs"]) if p is not None)
        raise CorpusError(f"{root}: {len(problems)} problem(s): {listed}" + (f" (see {where})" if where else ""))
    return report


def _problems(outcomes: list[ExpectationOutcome]) -> list[str]:
    """One line per failing video, naming each expectation it breaks and the values; then corpus-wide failures."""
    per_video: dict[str, list[str]] = {}
    corpus_wide = []
    for outcome in outcomes:
        if outcome.success:
            continue
        if not outcome.failed:
            corpus_wide.append(f'corpus: fails "{outcome.description}" (observed {outcome.observed})')
        for video, values in outcome.failed.items():
            per_video.setdefault(video, []).append(f'"{outcome.description}" ({values})')
    return [f"{video}: fails {', '.join(broken)}" for video, broken in per_video.items()] + corpus_wide
