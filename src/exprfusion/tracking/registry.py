"""Log the final model to MLflow, register it, and move the ``champion`` alias only to a better model.

The champion rule: a new version becomes ``champion`` when there is no champion yet; when the champion was scored
on the same validation data (equal ``corpus_hash``) and the new validation macro-F1 is strictly higher; or when the
champion was trained on a different corpus (its score does not compare, and the newest data defines the task).
Each run records the comparison: tag ``promoted`` (``true``/``false``), tag ``champion_decision`` (why) and, when a
champion existed, metric ``champion_previous_macro_f1``.

The model is logged as the MLflow pyfunc of :mod:`exprfusion.tracking.pyfunc_model`, which wraps the project's own
artefact
file: the file DVC versions is the file MLflow stores. The run also carries the corpus as its MLflow dataset input and
MLflow's source tags (:mod:`exprfusion.tracking.runs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import torch
from mlflow.exceptions import MlflowException

import exprfusion
from exprfusion.core.errors import InputError
from exprfusion.core.git_info import git_commit
from exprfusion.data.corpus import Corpus
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.tracking import runs as tracking
from exprfusion.tracking.lineage import (
    PARAMS_ARTIFACT,
    TAG_CORPUS_HASH,
    TAG_DVC_CORPUS_MD5,
    TAG_GIT_COMMIT,
    TAG_TUNE_PARENT,
    dvc_out_md5,
)
from exprfusion.tracking.pyfunc_model import ExpressionModel, frames_table, pyfunc_signature
from exprfusion.tracking.registration import RegistrationResult
from exprfusion.training.train import TrainResult
from exprfusion.training.train_config import TrainConfig

REGISTERED_NAME = "exprfusion-fusion"
CHAMPION_ALIAS = "champion"
SCORE_METRIC = "macro_f1"


def champion_decision(name: str, corpus_hash: str, macro_f1: float) -> tuple[bool, str, Any | None, float | None]:
    """Apply the champion rule (module docstring) to a candidate.

    Returns:
        ``(promote, reason, current champion ModelVersion or None, its macro-F1 or None)``.
    """
    registry = tracking.client()
    try:
        champion = registry.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        return True, "no champion yet", None, None
    champion_run = registry.get_run(champion.run_id)
    champion_f1 = champion.tags.get(SCORE_METRIC) or champion_run.data.metrics.get(f"final_{SCORE_METRIC}")
    champion_f1 = float(champion_f1) if champion_f1 is not None else None
    champion_hash = champion.tags.get(TAG_CORPUS_HASH) or champion_run.data.tags.get(TAG_CORPUS_HASH)
    if champion_hash != corpus_hash:
        return True, f"champion v{champion.version} was trained on another corpus", champion, champion_f1
    if champion_f1 is None or macro_f1 > champion_f1:
        return (
            True,
            f"macro_f1 {macro_f1:.4f} beats champion v{champion.version} ({champion_f1})",
            champion,
            champion_f1,
        )
    return (
        False,
        f"macro_f1 {macro_f1:.4f} does not beat champion v{champion.version} ({champion_f1:.4f})",
        champion,
        champion_f1,
    )


def _as_dict(config: Any) -> dict[str, Any]:
    return config.to_dict() if isinstance(config, FusionConfig | TrainConfig) else dict(config)


def log_and_register(
    model_path: str | Path,
    result: TrainResult | Mapping[str, float],
    model_config: FusionConfig | Mapping[str, Any],
    train_config: TrainConfig | Mapping[str, Any],
    *,
    corpus: Corpus | str | Path,
    parent_run_id: str | None = None,
    registered_name: str = REGISTERED_NAME,
    experiment: str = tracking.DEFAULT_EXPERIMENT,
    run_id: str | None = None,
    dvc_lock: str | Path = "dvc.lock",
) -> RegistrationResult:
    """Log a trained model with its lineage to MLflow, register it, and move ``champion`` if it wins.

    Args:
        model_path: the artefact written by ``artifact.save_model``.
        result: the training result (its best validation metrics and per-epoch history are logged) or a dict of
            validation metrics holding ``macro_f1``.
        model_config: the model's config (logged as ``model.*`` params and in ``params.json``).
        train_config: the training config (``train.*`` params).
        corpus: the corpus the model was trained and validated on (its content hash is the data lineage).
        parent_run_id: the hyper-parameter search that chose the config (tag ``tune_parent_run_id``).
        registered_name: the registered model name.
        experiment: the MLflow experiment of a new run.
        run_id: an open run to complete (e.g. one whose epochs ``tracking.epoch_logger`` logged); None creates one
            and logs the history of ``result`` into it.
        dvc_lock: the ``dvc.lock`` whose md5 of the corpus output is recorded (tag ``dvc_corpus_md5``) if present.

    Returns:
        The run, the new version and the champion decision.
    """
    corpus = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
    metrics = dict(result.best_metrics) if isinstance(result, TrainResult) else dict(result)
    if SCORE_METRIC not in metrics:
        raise ValueError(f"the metrics to register must include {SCORE_METRIC!r}; got {sorted(metrics)}")
    experiment_id = tracking.configure_mlflow(experiment)
    if run_id is None:
        run_id = tracking.start_run(experiment_id, "final-training")
        if isinstance(result, TrainResult):
            log_epoch = tracking.epoch_logger(run_id)
            for report in result.history:
                log_epoch(report)
    try:
        registration = _log_and_register_run(
            run_id,
            model_path,
            result,
            metrics,
            _as_dict(model_config),
            _as_dict(train_config),
            corpus=corpus,
            parent_run_id=parent_run_id,
            registered_name=registered_name,
            dvc_lock=dvc_lock,
        )
    except BaseException:
        tracking.finish_run(run_id, "FAILED")
        raise
    tracking.finish_run(run_id)
    return registration


def _log_and_register_run(
    run_id: str,
    model_path: str | Path,
    result: TrainResult | Mapping[str, float],
    metrics: dict[str, float],
    model_values: dict[str, Any],
    train_values: dict[str, Any],
    *,
    corpus: Corpus,
    parent_run_id: str | None,
    registered_name: str,
    dvc_lock: str | Path,
) -> RegistrationResult:
    """Fill an open run with lineage, params, metrics and the pyfunc model; register it; apply the champion rule."""
    corpus_hash = corpus.content_hash()
    commit = git_commit()
    tags = {
        TAG_GIT_COMMIT: commit,
        TAG_CORPUS_HASH: corpus_hash,
        TAG_DVC_CORPUS_MD5: dvc_out_md5(corpus.root, dvc_lock) or "untracked",
        "model_kind": "final",
    }
    if parent_run_id:
        tags[TAG_TUNE_PARENT] = parent_run_id
    tracking.set_tags(run_id, {**tags, **tracking.source_tags(commit)})
    tracking.log_corpus_input(run_id, corpus.root, corpus_hash)
    tracking.log_params(run_id, tracking.flatten_params(model_values, train_values))
    tracking.log_final_metrics(run_id, metrics)
    if isinstance(result, TrainResult):
        tracking.log_metrics(run_id, {"best_epoch": result.best_epoch})
        tracking.log_validation_metrics(run_id, result.validation_metrics)

    with mlflow.start_run(run_id=run_id):
        mlflow.log_dict({"model": model_values, "train": train_values}, PARAMS_ARTIFACT)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=ExpressionModel(),
            artifacts={"model": str(model_path)},
            signature=pyfunc_signature(),
            input_example=frames_table(corpus),
            pip_requirements=[
                f"exprfusion=={exprfusion.__version__}",
                f"torch=={torch.__version__.split('+')[0]}",
                f"mlflow=={mlflow.__version__}",
            ],
        )
        version = mlflow.register_model(info.model_uri, registered_name)

    score = float(metrics[SCORE_METRIC])
    promote, reason, champion, champion_f1 = champion_decision(registered_name, corpus_hash, score)
    registry = tracking.client()
    for key, value in {**tags, SCORE_METRIC: score}.items():
        registry.set_model_version_tag(registered_name, version.version, key, str(value))
    if promote:
        registry.set_registered_model_alias(registered_name, CHAMPION_ALIAS, version.version)
    tracking.set_tags(run_id, {"promoted": str(promote).lower(), "champion_decision": reason})
    if champion_f1 is not None:
        tracking.log_metrics(run_id, {"champion_previous_macro_f1": champion_f1})
    return RegistrationResult(
        run_id=run_id,
        name=registered_name,
        version=int(version.version),
        model_uri=f"models:/{registered_name}/{version.version}",
        macro_f1=score,
        corpus_hash=corpus_hash,
        promoted=promote,
        decision=reason,
        previous_champion_version=int(champion.version) if champion is not None else None,
        previous_champion_macro_f1=champion_f1,
    )


def _interval_metrics(name: str, bounds: Any) -> dict[str, float]:
    """``<name>_lo`` and ``<name>_hi`` of a ``[lo, hi]`` interval of ``metrics.json``."""
    lo, hi = bounds
    return {f"{name}_lo": float(lo), f"{name}_hi": float(hi)}


def evaluation_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Flatten ``metrics.json`` into MLflow metrics ``eval_<name>``, ``eval_f1_<Class>``, ``eval_robustness_<f>``
    and ``eval_baseline_<name>`` (the baseline's macro-F1 per input and the model's margin over it).

    Each 95 % interval ``<name>_ci`` becomes two metrics, ``eval_<name>_ci_lo`` and ``eval_<name>_ci_hi`` (per class
    ``eval_f1_<Class>_ci_lo``, per robustness fraction ``eval_robustness_<f>_ci_lo``, in the baseline block
    ``eval_baseline_<name>_ci_lo``; ``_hi`` alike).
    """
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or key == "robustness_seed":
            continue
        if isinstance(value, int | float):
            flat[f"eval_{key}"] = float(value)
        elif key == "per_class_f1":
            flat.update({f"eval_f1_{name}": float(score) for name, score in value.items()})
        elif key == "per_class_f1_ci":
            for name, bounds in value.items():
                flat.update(_interval_metrics(f"eval_f1_{name}_ci", bounds))
        elif key == "robustness":
            flat.update({f"eval_robustness_{fraction}": float(score) for fraction, score in value.items()})
        elif key == "robustness_ci":
            for fraction, bounds in value.items():
                flat.update(_interval_metrics(f"eval_robustness_{fraction}_ci", bounds))
        elif key.endswith("_ci"):
            flat.update(_interval_metrics(f"eval_{key}", value))
        elif key == "baseline":
            flat.update(tracking.flat_metrics(value, "eval_baseline_", "eval_baseline_f1_"))
            for name, bounds in value.items():
                if name.endswith("_ci"):
                    flat.update(_interval_metrics(f"eval_baseline_{name}", bounds))
    return flat


def training_run_id(registration: str | Path) -> str:
    """The MLflow run id ``registration`` (the train stage's ``registration.json``) names, checked in the store.

    Raises :class:`InputError` naming the file when it cannot be read, or when the tracking store no longer holds
    the run (a deleted ``mlflow.db``, another ``MLFLOW_TRACKING_URI``): before an evaluation spends its time.
    """
    path = Path(registration)
    run_id = RegistrationResult.read(path).run_id
    try:
        tracking.client().get_run(run_id)
    except MlflowException:
        raise InputError(
            f"{path} names MLflow run {run_id}, which the tracking store {tracking.tracking_uri()} does not hold "
            "(was mlflow.db removed, or MLFLOW_TRACKING_URI changed?); rerun training: dvc repro --force train"
        ) from None
    return run_id


def log_evaluation(run_id: str, metrics: Mapping[str, Any], plots_dir: str | Path) -> None:
    """Attach an evaluation to the training run: flattened metrics, ``metrics.json`` and every plot under ``plots/``."""
    registry = tracking.client()
    tracking.log_metrics(run_id, evaluation_metrics(metrics))
    registry.log_dict(run_id, dict(metrics), "evaluation/metrics.json")
    for path in sorted(Path(plots_dir).glob("*")):
        if path.suffix in (".png", ".json"):
            registry.log_artifact(run_id, str(path), artifact_path="plots")
