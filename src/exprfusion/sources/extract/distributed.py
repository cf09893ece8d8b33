"""Scale-out on Ray: one long-lived worker (a Ray actor) per GPU, media files handed out one at a time.

Each worker loads both models once and runs the same loop as the single process (:class:`MediaExtractor`) on the
media it is given, returning its features; the driver writes them into the cache as they arrive and then writes the
one corpus, so the workers need no shared output folder (they do need to read the inputs at the same paths). Media
are handed out dynamically (``ActorPool.map_unordered``), so a long video does not hold up a static shard. Without
GPUs in the cluster the CPUs are shared out among workers instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from exprfusion.sources.extract.checkpoints import compute_dtype
from exprfusion.sources.extract.plan import MediaJob
from exprfusion.sources.extract.settings import ExtractSettings
from exprfusion.sources.extract.worker import MediaExtractor, Result


def _cluster_gpus() -> int:
    import ray

    return int(ray.cluster_resources().get("GPU", 0))


def _uses_gpus(settings: ExtractSettings) -> bool:
    return settings.device in ("auto", "cuda") and _cluster_gpus() > 0


def _gpu_dtype(precision: str) -> torch.dtype | None:
    return compute_dtype(precision, torch.device("cuda"))


def cluster_dtype(settings: ExtractSettings) -> torch.dtype | None:
    """The autocast dtype the workers will use (asked of a GPU worker when the cluster has GPUs)."""
    if not _uses_gpus(settings):
        return compute_dtype(settings.precision, torch.device("cpu"))
    import ray

    return ray.get(ray.remote(num_gpus=1, num_cpus=0)(_gpu_dtype).remote(settings.precision))


class MediaWorker:
    """A Ray actor's state: one :class:`MediaExtractor` (models loaded on first use)."""

    def __init__(self, settings: ExtractSettings, record: dict[str, Any]) -> None:
        self.extractor = MediaExtractor(settings, record)

    def run(self, job: MediaJob, faces_todo: set[str], audio_todo: set[str]) -> list[Result]:
        """Extract one media's pending faces and audio."""
        return list(self.extractor.run([job], faces_todo, audio_todo))


def run_on_ray(
    jobs: Sequence[MediaJob],
    faces_todo: set[str],
    audio_todo: set[str],
    settings: ExtractSettings,
    record: dict[str, Any],
) -> Iterator[Result]:
    """Extract ``jobs`` on Ray workers, one per GPU; yield results as media finish.

    Each worker reserves a CPU for itself and one per image-decoding process (``settings.workers``), as far as the
    cluster's CPUs per GPU allow. Without GPUs, the cluster's CPUs are divided into as many such workers as fit.
    Runs inside :func:`ray_session`.
    """
    import ray
    from ray.util import ActorPool

    cpus = int(ray.cluster_resources().get("CPU", 1))
    if _uses_gpus(settings):
        gpus = _cluster_gpus()
        count = gpus
        resources = {"num_gpus": 1, "num_cpus": max(1, min(1 + settings.worker_count(), cpus // gpus))}
    else:
        each = max(1, min(1 + settings.worker_count(), cpus))
        count, resources = max(1, cpus // each), {"num_cpus": each}
    worker = ray.remote(**resources)(MediaWorker)
    actors = [worker.remote(settings, record) for _ in range(min(count, len(jobs)))]
    pool = ActorPool(actors)
    try:
        for results in pool.map_unordered(
            lambda actor, job: actor.run.remote(
                job, {v.name for v in job.videos} & faces_todo, {job.media} & audio_todo
            ),
            list(jobs),
        ):
            yield from results
    finally:
        for actor in actors:
            ray.kill(actor)
