"""Where a model came from: the git commit, the DVC-tracked corpus, the params, and the MLflow run behind a version.

Every registered model version points at one MLflow run; that run carries the tags named here (``git_commit``,
``corpus_hash``, ``dvc_corpus_md5``, ``tune_parent_run_id``) and a ``params.json`` artifact, so one lookup answers
"which code, which data, which settings produced the model behind ``champion``?". The same facts travel with the
artefact itself: in its ``metadata`` (:func:`exprfusion.training.train.training_metadata`) and in the package's
``model_card.json`` (:func:`exprfusion.tracking.packaging.package_model`).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import yaml
from mlflow.exceptions import MlflowException

from exprfusion.core.git_info import UNKNOWN
from exprfusion.tracking import runs as tracking

TAG_GIT_COMMIT = "git_commit"
TAG_CORPUS_HASH = "corpus_hash"
TAG_DVC_CORPUS_MD5 = "dvc_corpus_md5"
TAG_TUNE_PARENT = "tune_parent_run_id"
PARAMS_ARTIFACT = "params.json"


def dvc_out_md5(path: str | Path, lock_path: str | Path = "dvc.lock") -> str | None:
    """The md5 that ``dvc.lock`` records for the stage output at ``path``, or None if the lock does not list it.

    Output paths in the lock are relative to its folder; ``path`` may be relative to the working directory or absolute.
    """
    lock_path = Path(lock_path)
    if not lock_path.is_file():
        return None
    lock = yaml.safe_load(lock_path.read_text()) or {}
    target = Path(path).resolve()
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if (lock_path.parent / out["path"]).resolve() == target:
                return out.get("md5")
    return None


def resolve_version(name: str, version_or_alias: str | int) -> Any:
    """The registered ``ModelVersion`` for a version number (``3``, ``"3"``) or an alias (``"champion"``)."""
    registry = tracking.client()
    if isinstance(version_or_alias, int) or str(version_or_alias).isdigit():
        return registry.get_model_version(name, str(version_or_alias))
    return registry.get_model_version_by_alias(name, str(version_or_alias))


def model_lineage(name: str, version_or_alias: str | int) -> dict[str, Any]:
    """Everything that produced one registered model version.

    Args:
        name: registered model name, e.g. ``"exprfusion-fusion"``.
        version_or_alias: a version number or an alias such as ``"champion"``.

    Returns:
        ``{"name", "version", "aliases", "run_id", "git_commit", "corpus_hash", "dvc_corpus_md5",
        "tune_parent_run_id", "params" (the run's params.json: {"model": ..., "train": ...}), "metrics"}``.
    """
    version = resolve_version(name, version_or_alias)
    run = tracking.client().get_run(version.run_id)
    tags = run.data.tags
    params = _run_params(run)
    return {
        "name": name,
        "version": int(version.version),
        "aliases": list(version.aliases),
        "run_id": run.info.run_id,
        "git_commit": tags.get(TAG_GIT_COMMIT, UNKNOWN),
        "corpus_hash": tags.get(TAG_CORPUS_HASH, UNKNOWN),
        "dvc_corpus_md5": tags.get(TAG_DVC_CORPUS_MD5),
        "tune_parent_run_id": tags.get(TAG_TUNE_PARENT),
        "params": params,
        "metrics": dict(run.data.metrics),
    }


def _run_params(run: Any) -> dict[str, Any]:
    """A run's ``params.json`` artifact; its flattened MLflow params when the artifact is missing."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = tracking.client().download_artifacts(run.info.run_id, PARAMS_ARTIFACT, folder)
            return json.loads(Path(path).read_text())
        except (MlflowException, OSError, ValueError):
            return dict(run.data.params)


def runs_for_corpus(corpus_hash: str) -> pd.DataFrame:
    """Every MLflow run, in any experiment, tagged with ``corpus_hash`` (newest first; empty frame if none)."""
    mlflow.set_tracking_uri(tracking.tracking_uri())
    quoted = corpus_hash.replace("'", "\\'")
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.{TAG_CORPUS_HASH} = '{quoted}'",
        order_by=["attributes.start_time DESC"],
    )
    return runs if isinstance(runs, pd.DataFrame) else pd.DataFrame(runs)
