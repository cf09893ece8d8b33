"""Build a corpus from Aff-Wild2 media: plan, extract what the cache lacks (here or on Ray), write the corpus.

Every finished video is kept in the cache at once, so an interrupted run loses at most the videos in flight, and a
re-run extracts only what changed. The corpus itself is written (through
:class:`exprfusion.data.corpus_writer.CorpusWriter`)
only once every video is done; an image or a media file that cannot be decoded is reported, and then the corpus is
written only with ``allow_missing``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from exprfusion.core.errors import InputError
from exprfusion.data.corpus import CorpusError, VideoRecord
from exprfusion.data.corpus_writer import CorpusWriter
from exprfusion.sources.extract.align import align_at_times
from exprfusion.sources.extract.cache import ExtractionCache, detected_faces_key, faces_key, media_key
from exprfusion.sources.extract.checkpoints import compute_device, compute_dtype, describe_checkpoint, dtype_name
from exprfusion.sources.extract.face_video import DETECT, faces_record
from exprfusion.sources.extract.plan import MediaJob, plan_jobs
from exprfusion.sources.extract.settings import ExtractSettings, MediaSources, RunOptions
from exprfusion.sources.extract.worker import AudioDone, FacesDone, MediaExtractor, MediaFailed, Result


@dataclass
class ExtractReport:
    """What a run did: the corpus (None when failures kept it from being written), the videos extracted now and
    those reused from the cache, and one message per image or media file that could not be decoded."""

    corpus: Path | None
    extracted: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class ExtractionFailed(InputError):
    """Some images or media files could not be decoded, and ``allow_missing`` was not given."""

    def __init__(self, report: ExtractReport) -> None:
        self.report = report
        listed = "; ".join(report.failures[:20]) + (
            f"; ... {len(report.failures) - 20} more" if len(report.failures) > 20 else ""
        )
        super().__init__(
            f"{len(report.failures)} input(s) could not be decoded, so no corpus was written (the other videos are "
            f"kept in the cache; fix the files and run again, or allow missing inputs): {listed}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.report,))


def extractor_record(settings: ExtractSettings, dtype: torch.dtype | None) -> dict[str, Any]:
    """What made the features: both checkpoints (revision or hash), layers, pooling, dtypes, chunking, alignment,
    the face cropper (``faces``) and the batch sizes (which ``predict --video`` repeats, so that features of the same
    frames are computed in the same batches)."""
    visual, audio = settings.visual, settings.audio
    return {
        "visual": {
            **describe_checkpoint(visual.model, visual.revision),
            "pooling": visual.pooling,
            "layer": visual.layer,
            "dtype": dtype_name(dtype),
            "output_dtype": "float16",
        },
        "audio": {
            **describe_checkpoint(audio.model, audio.revision),
            "layer": audio.layer,
            "chunk_seconds": audio.chunk_seconds,
            "context_seconds": audio.context_seconds,
            "dtype": dtype_name(dtype),
            "output_dtype": "float16",
        },
        "align": settings.align,
        "faces": faces_record(settings.faces, settings.face_detector),
        "batch_sizes": {"visual": visual.batch_size, "audio": audio.batch_size},
    }


def default_cache(out: Path) -> Path:
    """``.<name>.extract`` beside the corpus folder."""
    return out.parent / f".{out.name}.extract"


def use_ray(options: RunOptions) -> bool:
    """Whether to run on Ray: asked for, or ``RAY_ADDRESS`` names a cluster."""
    return options.ray or bool(os.environ.get("RAY_ADDRESS"))


Run = Callable[[list[MediaJob], set[str], set[str], dict[str, Any]], Iterable[Result]]


@contextmanager
def _backend(settings: ExtractSettings, options: RunOptions) -> Iterator[tuple[torch.dtype | None, Run]]:
    """``(compute dtype, run)``: this process's models, or Ray workers (inside a Ray session)."""
    if not use_ray(options):
        dtype = compute_dtype(settings.precision, compute_device(settings.device))
        yield dtype, lambda jobs, faces, audio, record: MediaExtractor(settings, record).run(jobs, faces, audio)
        return
    from exprfusion.core.ray_runtime import ray_session
    from exprfusion.sources.extract.distributed import cluster_dtype, run_on_ray

    with ray_session():
        yield (
            cluster_dtype(settings),
            lambda jobs, faces, audio, record: run_on_ray(jobs, faces, audio, settings, record),
        )


def _keys(jobs: list[MediaJob], record: dict[str, Any], threads: int) -> tuple[dict[str, str], dict[str, str]]:
    """Cache keys of every video's faces and every media's audio, hashed by a pool of threads (I/O bound)."""
    videos = [video for job in jobs for video in job.videos]
    paths = [job.path for job in jobs for _ in job.videos]
    detect = record["faces"]["cropper"] == DETECT

    def key(video: Any, path: Path) -> str:
        if detect:
            return detected_faces_key(record["visual"], record["faces"], path, video.n_frames)
        return faces_key(record["visual"], video.images)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        faces = pool.map(key, videos, paths)
        audio = pool.map(lambda job: media_key(record["audio"], job.path, job.n_frames), jobs)
        return (
            dict(zip((video.name for video in videos), faces, strict=True)),
            dict(zip((job.media for job in jobs), audio, strict=True)),
        )


def _record(video: Any, job: MediaJob, cache: ExtractionCache, keys: tuple[dict, dict], align: str) -> VideoRecord:
    faces = cache.load_faces(video.name, keys[0][video.name])
    audio = cache.load_audio(job.media, keys[1][job.media])
    if faces is None or audio is None:
        raise CorpusError(f"{cache.root}: the cache lost video {video.name!r} during the run")
    n = video.n_frames
    if audio.has_audio:
        aligned = align_at_times(audio.features, audio.frame_times[:n], audio.rate, align)
    else:
        aligned = np.zeros((n, audio.features.shape[1]), dtype=np.float16)
    return VideoRecord(
        name=video.name,
        split=video.split,
        fps=audio.fps,
        visual=faces.features,
        audio=aligned,
        face_mask=faces.face_mask,
        audio_mask=np.full(n, audio.has_audio),
        labels=video.labels,
        media=job.media,
        subject=video.name,  # one person per annotation name (Aff-Wild2 does not say which videos share a person)
    )


def extract_corpus(
    sources: MediaSources,
    settings: ExtractSettings,
    out: str | os.PathLike[str],
    options: RunOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ExtractReport:
    """Extract BEiT/WavLM-style features of every annotated video into a corpus at ``out``.

    Args:
        sources: the official layout (annotations, cropped_aligned, videos, optional test list).
        settings: the models and how they run.
        out: the corpus folder.
        options: cache folder, ``allow_missing``, Ray, overwrite.
        progress: ``callback(done, total)`` in frames; a frame is done half when its faces are, and half when its
            audio is.

    Returns:
        The report; ``report.corpus`` is the corpus folder.

    Raises:
        ExtractionFailed: an image or media file could not be decoded and ``allow_missing`` is off; the finished
            videos stay in the cache.
        InputError: a malformed annotation, an existing corpus without ``overwrite``, a model that cannot be loaded.
    """
    options = options or RunOptions()
    out = Path(out)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())) and not options.overwrite:
        raise CorpusError(f"{out} already exists and is not empty; pass overwrite to replace it")
    jobs, failures = plan_jobs(sources, faces=settings.faces)
    report = ExtractReport(corpus=None, failures=list(failures))
    cache = ExtractionCache(options.cache or default_cache(out))
    with _backend(settings, options) as (dtype, run):
        record = extractor_record(settings, dtype)
        keys = _keys(jobs, record, threads=max(4, settings.worker_count()))
        faces_todo = {v.name for job in jobs for v in job.videos if not cache.holds_faces(v.name, keys[0][v.name])}
        audio_todo = {job.media for job in jobs if not cache.holds_audio(job.media, keys[1][job.media])}
        frames = {v.name: v.n_frames for job in jobs for v in job.videos}
        media_frames = {job.media: sum(v.n_frames for v in job.videos) for job in jobs}
        total = sum(frames.values())  # frames; the halves below are faces and audio, so each frame counts once
        done = sum(n for video, n in frames.items() if video not in faces_todo)
        done += sum(n for media, n in media_frames.items() if media not in audio_todo)
        if progress:
            progress(done // 2, total)
        pending = [job for job in jobs if job.media in audio_todo or any(v.name in faces_todo for v in job.videos)]
        failed_media = set()
        for result in run(pending, faces_todo, audio_todo, record) if pending else ():
            if isinstance(result, FacesDone):
                cache.save_faces(result.video, keys[0][result.video], result.entry)
                done += frames[result.video]
            elif isinstance(result, AudioDone):
                cache.save_audio(result.media, keys[1][result.media], result.entry)
                done += media_frames[result.media]
            elif isinstance(result, MediaFailed):
                failed_media.add(result.media)
                names = ", ".join(v.name for job in jobs if job.media == result.media for v in job.videos)
                report.failures.append(f"{result.message} (videos {names} left out)")
            if progress:
                progress(done // 2, total)
    jobs = [job for job in jobs if job.media not in failed_media]
    for job in jobs:
        for video in job.videos:
            redone = video.name in faces_todo or job.media in audio_todo
            (report.extracted if redone else report.reused).append(video.name)
            entry = cache.load_faces(video.name, keys[0][video.name])
            report.failures.extend(entry.failures if entry is not None else ())
    if report.failures and not options.allow_missing:
        raise ExtractionFailed(report)
    if not jobs:
        raise InputError(f"{sources.annotations}: no video could be extracted")
    source = f"media:{sources.annotations}"
    with CorpusWriter(out, overwrite=options.overwrite, source=source, extractor=record) as writer:
        for job in jobs:
            for video in job.videos:
                writer.add(_record(video, job, cache, keys, settings.align))
    report.corpus = out
    return report
