"""The one place that talks to MLflow for tracking: where the store is, what a run logs, parent and child runs.

The embedded default is a sqlite store at ``<cwd>/mlflow.db`` (MLflow 3 no longer accepts ``file:`` stores);
``MLFLOW_TRACKING_URI`` points everything at an MLflow server instead. Runs are written through ``MlflowClient`` with
explicit run ids, never through the fluent "active run", so logging is safe from any process or thread (Ray trials,
callbacks) and several runs can be open at once.

Runs follow MLflow's own conventions, so its UI shows them as model training: every experiment the project uses is
tagged ``mlflow.experimentKind = custom_model_development`` (MLflow 3 opens it on its runs, not on GenAI traces),
every run logs the corpus as a dataset input (:func:`log_corpus_input`: the Dataset column) and carries MLflow's
source tags (:func:`source_tags`: the Source column).

Metric names are the small documented set of :mod:`exprfusion.tracking.metric_names`; every setting is a param under
one name (``model.<key>``, ``train.<key>``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag, SourceType
from mlflow.utils.mlflow_tags import (
    MLFLOW_DATASET_CONTEXT,
    MLFLOW_GIT_COMMIT,
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_SOURCE_NAME,
    MLFLOW_SOURCE_TYPE,
)

from exprfusion.core.git_info import git_commit
from exprfusion.tracking.metric_names import epoch_metrics
from exprfusion.training.epoch_report import EpochReport

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
DB_NAME = "mlflow.db"
DEFAULT_EXPERIMENT = "exprfusion"  # the experiment of searches and final runs unless params.yaml names another
_SQLITE_PREFIX = "sqlite:///"
# MLflow 3's experiment kind (its UI reads this tag; MLflow has no Python constant for it): model training experiments
# open on their runs, ``genai_development`` ones on traces.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# The longest dataset digest MLflow's stores accept (mlflow.utils.validation.MAX_DATASET_DIGEST_SIZE).
DATASET_DIGEST_LENGTH = 36
DATASET_SOURCE_TYPE = "local"  # a dataset read from a local path, as mlflow.data's LocalArtifactDatasetSource
DEFAULT_SOURCE_NAME = "exprfusion"
SOURCE_TAGS: tuple[str, ...] = (MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE, MLFLOW_GIT_COMMIT)


def tracking_uri() -> str:
    """The tracking store: ``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<cwd>/mlflow.db``.

    A relative sqlite path is made absolute, so that processes with another working directory (Ray trials) write
    to the same database.
    """
    uri = os.environ.get(TRACKING_URI_ENV, "").strip()
    if not uri:
        return f"{_SQLITE_PREFIX}{Path.cwd().resolve() / DB_NAME}"
    if uri.startswith(_SQLITE_PREFIX):
        path = uri.removeprefix(_SQLITE_PREFIX)
        if path and path != ":memory:" and not Path(path).is_absolute():
            return f"{_SQLITE_PREFIX}{Path(path).resolve()}"
    return uri


def configure_mlflow(experiment: str) -> str:
    """Point MLflow at :func:`tracking_uri` and select ``experiment`` (created if missing); return its id.

    An experiment without an experiment kind is tagged as model training (``EXPERIMENT_KIND``); a kind someone chose
    in the UI is kept.
    """
    mlflow.set_tracking_uri(tracking_uri())
    selected = mlflow.set_experiment(experiment)
    if EXPERIMENT_KIND_TAG not in selected.tags:
        client().set_experiment_tag(selected.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return selected.experiment_id


def client(uri: str | None = None) -> MlflowClient:
    """A client on ``uri`` (default: :func:`tracking_uri`)."""
    return MlflowClient(tracking_uri=uri or tracking_uri())


def flatten_params(model_config: Mapping[str, Any], train_config: Mapping[str, Any]) -> dict[str, Any]:
    """MLflow params of one run: ``model.<key>`` and ``train.<key>``, each setting under that one name."""
    params = {f"model.{key}": value for key, value in model_config.items()}
    params.update({f"train.{key}": value for key, value in train_config.items()})
    return params


def _now_ms() -> int:
    return int(time.time() * 1000)


def log_params(run_id: str, params: Mapping[str, Any], uri: str | None = None) -> None:
    """Log params in one batch (values as strings; ``None`` is logged as ``"None"``)."""
    batch = [Param(key, str(value)) for key, value in params.items()]
    for start in range(0, len(batch), 100):  # the store accepts at most 100 params per batch
        client(uri).log_batch(run_id, params=batch[start : start + 100])


def log_metrics(run_id: str, metrics: Mapping[str, float], step: int = 0, uri: str | None = None) -> None:
    """Log numeric metrics in one batch at ``step``."""
    stamp = _now_ms()
    batch = [Metric(key, float(value), stamp, step) for key, value in metrics.items()]
    if batch:
        client(uri).log_batch(run_id, metrics=batch)


def log_history(run_id: str, key: str, points: Iterable[tuple[int, float]], uri: str | None = None) -> None:
    """Log ``(step, value)`` points as the history of one metric, in one batch (MLflow draws it as a curve)."""
    stamp = _now_ms()
    batch = [Metric(key, float(value), stamp, int(step)) for step, value in points]
    for start in range(0, len(batch), 1000):  # the store accepts at most 1000 metrics per batch
        client(uri).log_batch(run_id, metrics=batch[start : start + 1000])


def epoch_logger(run_id: str, uri: str | None = None) -> Callable[[EpochReport], None]:
    """A ``train_model`` callback logging each epoch's selection score, train loss and lr at ``step=epoch``."""
    tracker = client(uri)

    def log_epoch(report: EpochReport) -> None:
        stamp = _now_ms()
        values = epoch_metrics(report)
        tracker.log_batch(run_id, metrics=[Metric(key, v, stamp, report.epoch) for key, v in values.items()])

    return log_epoch


def start_run(
    experiment_id: str,
    name: str,
    *,
    tags: Mapping[str, Any] | None = None,
    parent_run_id: str | None = None,
    uri: str | None = None,
    start_time: float | None = None,
) -> str:
    """Create a run (a child of ``parent_run_id`` when given) and return its id; it stays open until finished.

    ``start_time`` (seconds since the epoch, default now) is when the run's work began, so that a run created once
    its work is done (the final training) still shows that work's duration.
    """
    all_tags = {key: str(value) for key, value in (tags or {}).items()}
    if parent_run_id:
        all_tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
    started = None if start_time is None else int(start_time * 1000)
    return client(uri).create_run(experiment_id, start_time=started, tags=all_tags, run_name=name).info.run_id


def finish_run(run_id: str, status: str = "FINISHED", uri: str | None = None, end_time: int | None = None) -> None:
    """Close a run with ``status`` (``FINISHED``, ``FAILED`` or ``KILLED``), at ``end_time`` (ms; default now)."""
    client(uri).set_terminated(run_id, status=status, end_time=end_time)


def run_status(run_id: str, uri: str | None = None) -> str | None:
    """A run's status (``RUNNING``, ``FINISHED``, ...), or None if the store has no such run."""
    try:
        return client(uri).get_run(run_id).info.status
    except mlflow.exceptions.MlflowException:
        return None


def find_child_run(experiment_id: str, parent_run_id: str, tag: str, value: str, uri: str | None = None) -> str | None:
    """The id of the child of ``parent_run_id`` whose tag ``tag`` equals ``value``, if one exists."""
    quoted = value.replace("'", "\\'")
    runs = client(uri).search_runs(
        [experiment_id],
        filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}' and tags.`{tag}` = '{quoted}'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def set_tags(run_id: str, tags: Mapping[str, Any], uri: str | None = None) -> None:
    """Set several tags at once."""
    client(uri).log_batch(run_id, tags=[RunTag(key, str(value)) for key, value in tags.items()])


def entry_point() -> str:
    """The script this process runs, for ``mlflow.source.name``: relative to the working directory when inside it
    (``pipelines/train.py``), else its file name (``exprfusion`` for the console script); ``exprfusion`` without one.
    """
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is None or not script.is_file():
        return DEFAULT_SOURCE_NAME
    script = script.resolve()
    return str(script.relative_to(Path.cwd().resolve())) if script.is_relative_to(Path.cwd().resolve()) else script.name


def source_tags(commit: str | None = None, name: str | None = None) -> dict[str, str]:
    """MLflow's standard source tags of a run: ``mlflow.source.name``, ``mlflow.source.type`` and
    ``mlflow.source.git.commit`` (what MLflow's runs table shows as Source).

    Args:
        commit: the git commit (default: :func:`exprfusion.core.git_info.git_commit` of the working directory).
        name: the source name (default: :func:`entry_point`).
    """
    return {
        MLFLOW_SOURCE_NAME: name or entry_point(),
        MLFLOW_SOURCE_TYPE: SourceType.to_string(SourceType.LOCAL),
        MLFLOW_GIT_COMMIT: commit or git_commit(),
    }


def parent_source_tags(parent_run_id: str, uri: str | None = None) -> dict[str, str]:
    """The source tags of ``parent_run_id``, for its child runs (a Ray trial may run where no git checkout is).

    Falls back to :func:`source_tags` of this process if the parent has none.
    """
    tags = client(uri).get_run(parent_run_id).data.tags
    inherited = {key: tags[key] for key in SOURCE_TAGS if key in tags}
    return inherited if len(inherited) == len(SOURCE_TAGS) else source_tags()


def log_corpus_input(
    run_id: str, corpus_root: str | Path, corpus_hash: str, uri: str | None = None, context: str = "training"
) -> None:
    """Log the corpus as the run's MLflow dataset input (MLflow's Dataset column).

    The dataset is named after the corpus folder, its source is the corpus path, its digest the corpus content hash
    (cut to the ``DATASET_DIGEST_LENGTH`` characters MLflow stores; the profile holds the whole hash). Logging the
    same corpus to a run twice leaves one input.
    """
    root = Path(corpus_root).resolve()
    dataset = Dataset(
        name=root.name,
        digest=corpus_hash[:DATASET_DIGEST_LENGTH],
        source_type=DATASET_SOURCE_TYPE,
        source=json.dumps({"uri": str(root)}),
        profile=json.dumps({"corpus_hash": corpus_hash}),
    )
    tags = [InputTag(key=MLFLOW_DATASET_CONTEXT, value=context)]
    client(uri).log_inputs(run_id, datasets=[DatasetInput(dataset=dataset, tags=tags)])
