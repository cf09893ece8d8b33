"""Write a synthetic corpus, one media at a time, through the corpus writer."""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import replace
from numbers import Integral, Real
from pathlib import Path

from threadpoolctl import threadpool_limits

from exprfusion.core.errors import InputError
from exprfusion.core.labels import SPLITS
from exprfusion.data.corpus import VideoRecord
from exprfusion.data.corpus_writer import CorpusWriter
from exprfusion.sources.synthetic.features import World, build_world, render_media
from exprfusion.sources.synthetic.profiles import SyntheticProfile, get_profile
from exprfusion.sources.synthetic.sequences import MediaPlan, plan_corpus

ProgressCallback = Callable[[int, int], None]
PARALLEL_FRAMES = 200_000


def resolve_profile(
    profile: str | SyntheticProfile,
    *,
    visual_dim: int | None = None,
    audio_dim: int | None = None,
    missing_face_rate: float | None = None,
) -> SyntheticProfile:
    """The named profile with any explicitly given dimension or missing-face rate replacing its default.

    Raises:
        InputError: an unknown profile name, a width below 1 or a missing-face rate outside [0, 1).
    """
    settings = get_profile(profile) if isinstance(profile, str) else profile
    overrides = {"visual_dim": visual_dim, "audio_dim": audio_dim, "missing_face_rate": missing_face_rate}
    settings = replace(settings, **{key: value for key, value in overrides.items() if value is not None})
    widths = (settings.visual_dim, settings.audio_dim)
    if not all(isinstance(width, Integral) and not isinstance(width, bool) and width > 0 for width in widths):
        raise InputError(f"feature widths must be positive integers, got {settings.visual_dim}/{settings.audio_dim}")
    rate = settings.missing_face_rate
    if isinstance(rate, bool) or not isinstance(rate, Real) or not 0.0 <= rate < 1.0:
        raise InputError(f"missing_face_rate must lie in [0, 1), got {rate!r}")
    return settings


def generate_corpus(
    out: str | Path,
    profile: str | SyntheticProfile = "default",
    seed: int = 0,
    *,
    visual_dim: int | None = None,
    audio_dim: int | None = None,
    missing_face_rate: float | None = None,
    progress: ProgressCallback | None = None,
    overwrite: bool = False,
    workers: int | None = None,
) -> Path:
    """Generate an Aff-Wild2-shaped synthetic corpus and return its root folder.

    Media are generated and written one at a time and then dropped, so memory stays at a few videos whatever the
    corpus size. The same seed and settings give byte-identical files, whatever ``workers`` is.

    Args:
        out: corpus root to create (see :class:`exprfusion.data.corpus_writer.CorpusWriter`).
        profile: a name in ``PROFILES`` (``tiny``, ``default``, ``full``, ``realistic``, ``realistic-tiny``) or
            a ``SyntheticProfile``.
        seed: the one seed every random choice derives from.
        visual_dim: visual feature width; None keeps the profile's.
        audio_dim: audio feature width; None keeps the profile's.
        missing_face_rate: mean share of frames without a face; None keeps the profile's (0.02 by default).
        progress: called as ``progress(videos_written, videos_total)`` after every video.
        overwrite: replace an existing corpus at ``out``.
        workers: processes rendering features in parallel (1 = in this process); None picks two processes for
            corpora of more than ``PARALLEL_FRAMES`` frames (where they pay off) and one otherwise.

    Returns:
        The corpus root, readable with :class:`exprfusion.data.corpus.Corpus`.
    """
    settings = resolve_profile(profile, visual_dim=visual_dim, audio_dim=audio_dim, missing_face_rate=missing_face_rate)
    world = build_world(settings, seed, settings.visual_dim, settings.audio_dim)
    plans = plan_corpus(settings, seed)
    total = settings.train.videos + settings.validation.videos + settings.test.videos
    if workers is None:
        frames = sum(settings.split_size(split).labelled_frames for split in SPLITS)
        workers = min(2, os.cpu_count() or 1) if frames > PARALLEL_FRAMES else 1
    source = (
        f"synthetic profile={settings.name} seed={seed} visual_dim={settings.visual_dim} "
        f"audio_dim={settings.audio_dim} missing_face_rate={settings.missing_face_rate}"
    )
    done = 0
    with CorpusWriter(out, overwrite=overwrite, source=source) as writer:
        for records in _render_in_order(plans, world, settings, seed, workers):
            for record in records:
                writer.add(record)
                done += 1
                if progress is not None:
                    progress(done, total)
    return Path(out)


def _render_on_one_thread(plan: MediaPlan, world: World, profile: SyntheticProfile, seed: int) -> list[VideoRecord]:
    """Render one media with its linear algebra on one BLAS thread.

    A multi-threaded matrix product may round differently, and the bytes must not depend on ``workers``; the
    workers already use the cores between them.
    """
    with threadpool_limits(limits=1):
        return render_media(plan, world, profile, seed)


def _render_in_order(
    plans: Iterator[MediaPlan], world: World, profile: SyntheticProfile, seed: int, workers: int
) -> Iterator[list[VideoRecord]]:
    """Render every plan, yielding the records in plan order; at most ``2 * workers`` media in flight."""
    if workers <= 1:
        for plan in plans:
            yield _render_on_one_thread(plan, world, profile, seed)
        return
    # Fresh interpreters rather than forks: the caller may hold threads (torch, BLAS) that a fork would copy.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: deque[Future[list[VideoRecord]]] = deque()
        for plan in plans:
            pending.append(pool.submit(_render_on_one_thread, plan, world, profile, seed))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
