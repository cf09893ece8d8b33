"""Log the final model to MLflow, register it, and move the ``champion`` alias only to a better model.

The champion rule compares selection scores (``selection_macro_f1``: the holdout macro-F1 that chose the model; the
validation split is the reported score, never a selection score). A new version becomes ``champion`` when there is
no champion yet; when the champion was selected on the same corpus (equal ``corpus_hash``) and the new selection
score is strictly higher; or when the champion was trained on a different corpus (its score does not compare, and
the newest data defines the task). Each run records the comparison: tag ``promoted`` (``true``/``false``), tag
``champion_decision`` in plain words ("first champion", "beat v3 by 0.0120 ...", "kept v3: ..."), and, when a
champion existed, metric ``champion_selection_macro_f1``. Each registered version carries ``selection_macro_f1``
and ``validation_macro_f1`` as tags, names that say which score is which.

The model is logged as the MLflow pyfunc of :mod:`exprfusion.tracking.pyfunc_model`, which wraps the project's own
artefact file: the file DVC versions is the file MLflow stores. The run also carries the corpus as its MLflow
dataset input and MLflow's source tags (:mod:`exprfusion.tracking.runs`); its metrics are the documented set of
:mod:`exprfusion.tracking.metric_names`.
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
from exprfusion.tracking.metric_names import (
    PREVIOUS_CHAMPION,
    ROBUSTNESS,
    SELECTION,
    evaluation_metrics,
    reported,
    robustness_curve,
    selection_metrics,
)
from exprfusion.tracking.pyfunc_model import ExpressionModel, frames_table, pyfunc_signature
from exprfusion.tracking.registration import RegistrationResult
from exprfusion.training.train import TrainResult
from exprfusion.training.train_config import TrainConfig

REGISTERED_NAME = "exprfusion-fusion"
CHAMPION_ALIAS = "champion"
VALIDATION_TAG = reported("validation")
LEGACY_SCORE_TAG = "macro_f1"  # what versions registered before the rename call their selection score


def _selection_score(version: Any, run: Any) -> float | None:
    """A registered version's selection score: its tag, else its run's metric (older versions: ``macro_f1`` and
    ``final_macro_f1``, which held the same holdout score)."""
    tags, metrics = version.tags, run.data.metrics
    for value in (
        tags.get(SELECTION),
        tags.get(LEGACY_SCORE_TAG),
        metrics.get(SELECTION),
        metrics.get("final_macro_f1"),
    ):
        if value is not None:
            return float(value)
    return None


def decision_line(score: float, champion_version: int, champion_score: float) -> tuple[bool, str]:
    """Whether ``score`` takes the alias from a champion selected on the same corpus, and why, in plain words."""
    versus = f"selection macro-F1 {score:.4f} vs {champion_score:.4f}"
    if score > champion_score:
        return True, f"beat v{champion_version} by {score - champion_score:.4f} ({versus})"
    if score == champion_score:
        return False, f"kept v{champion_version}: a tie ({versus}); the alias moves only to a better model"
    return False, f"kept v{champion_version}: {champion_score - score:.4f} short ({versus})"


def champion_decision(name: str, corpus_hash: str, score: float) -> tuple[bool, str, Any | None, float | None]:
    """Apply the champion rule (module docstring) to a candidate's selection score.

    Returns:
        ``(promote, reason, current champion ModelVersion or None, its selection score or None)``.
    """
    registry = tracking.client()
    try:
        champion = registry.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        return True, "first champion", None, None
    champion_run = registry.get_run(champion.run_id)
    champion_score = _selection_score(champion, champion_run)
    champion_hash = champion.tags.get(TAG_CORPUS_HASH) or champion_run.data.tags.get(TAG_CORPUS_HASH)
    if champion_hash != corpus_hash:
        return True, f"replaced v{champion.version}, which was trained on another corpus", champion, champion_score
    if champion_score is None:
        return True, f"replaced v{champion.version}, which records no selection score", champion, None
    promote, reason = decision_line(score, int(champion.version), champion_score)
    return promote, reason, champion, champion_score


def _as_dict(config: Any) -> dict[str, Any]:
    return config.to_dict() if isinstance(config, FusionConfig | TrainConfig) else dict(config)


def log_and_register(
    model_path: str | Path,
    result: TrainResult | Mapping[str, Any],
    model_config: FusionConfig | Mapping[str, Any],
    train_config: TrainConfig | Mapping[str, Any],
    *,
    corpus: Corpus | str | Path,
    parent_run_id: str | None = None,
    registered_name: str = REGISTERED_NAME,
    experiment: str = tracking.DEFAULT_EXPERIMENT,
    run_id: str | None = None,
    dvc_lock: str | Path = "dvc.lock",
    validation_macro_f1: float | None = None,
    start_time: float | None = None,
) -> RegistrationResult:
    """Log a trained model with its lineage to MLflow, register it, and move ``champion`` if it wins.

    Args:
        model_path: the artefact written by ``artifact.save_model``.
        result: the training result (its selection scores at the best epoch, their per-epoch history and its
            validation macro-F1 are logged) or a dict of selection scores holding ``macro_f1`` (and optionally
            ``macro_f1_ci`` and ``best_epoch``).
        model_config: the model's config (logged as ``model.*`` params and in ``params.json``).
        train_config: the training config (``train.*`` params).
        corpus: the corpus the model was trained and validated on (its content hash is the data lineage).
        parent_run_id: the hyper-parameter search that chose the config (tag ``tune_parent_run_id``).
        registered_name: the registered model name.
        experiment: the MLflow experiment of a new run.
        run_id: an open run to complete (e.g. one whose epochs ``tracking.epoch_logger`` logged); None creates one
            and logs the history of ``result`` into it.
        dvc_lock: the ``dvc.lock`` whose md5 of the corpus output is recorded (tag ``dvc_corpus_md5``) if present.
        validation_macro_f1: the model's validation macro-F1 when ``result`` is a dict (a ``TrainResult`` carries
            its own); tagged on the version, never used by the champion rule.
        start_time: when the training began (seconds since the epoch): the start of a new run, so that its
            duration is the training's.

    Returns:
        The run, the new version and the champion decision.
    """
    corpus = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
    if isinstance(result, TrainResult):
        selection = {**result.best_metrics, "best_epoch": result.best_epoch}
        validation_macro_f1 = result.validation_metrics.get("macro_f1", validation_macro_f1)
    else:
        selection = dict(result)
    if "macro_f1" not in selection:
        raise ValueError(f"the selection scores to register must include 'macro_f1'; got {sorted(selection)}")
    experiment_id = tracking.configure_mlflow(experiment)
    if run_id is None:
        run_id = tracking.start_run(experiment_id, "final-training", start_time=start_time)
        if isinstance(result, TrainResult):
            log_epoch = tracking.epoch_logger(run_id)
            for report in result.history:
                log_epoch(report)
    model_values = _as_dict(model_config)
    if isinstance(model_config, FusionConfig):
        model_values["ff_dim"] = model_config.feedforward_dim  # the width it has, not "None"
    try:
        registration = _log_and_register_run(
            run_id,
            model_path,
            selection,
            None if validation_macro_f1 is None else float(validation_macro_f1),
            model_values,
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
    selection: dict[str, Any],
    validation_macro_f1: float | None,
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
    tracking.log_metrics(run_id, selection_metrics(selection))

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

    score = float(selection["macro_f1"])
    promote, reason, champion, champion_score = champion_decision(registered_name, corpus_hash, score)
    registry = tracking.client()
    scores = {SELECTION: score, **({VALIDATION_TAG: validation_macro_f1} if validation_macro_f1 is not None else {})}
    for key, value in {**tags, **scores}.items():
        registry.set_model_version_tag(registered_name, version.version, key, str(value))
    if promote:
        registry.set_registered_model_alias(registered_name, CHAMPION_ALIAS, version.version)
    tracking.set_tags(run_id, {"promoted": str(promote).lower(), "champion_decision": reason})
    if champion_score is not None:
        tracking.log_metrics(run_id, {PREVIOUS_CHAMPION: champion_score})
    return RegistrationResult(
        run_id=run_id,
        name=registered_name,
        version=int(version.version),
        model_uri=f"models:/{registered_name}/{version.version}",
        selection_macro_f1=score,
        validation_macro_f1=validation_macro_f1,
        corpus_hash=corpus_hash,
        promoted=promote,
        decision=reason,
        previous_champion_version=int(champion.version) if champion is not None else None,
        previous_champion_selection_macro_f1=champion_score,
    )


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


def log_evaluation(run_id: str, report: Mapping[str, Any], plots_dir: str | Path) -> None:
    """Attach an evaluation to the training run: its headline scores with their intervals
    (:func:`~exprfusion.tracking.metric_names.evaluation_metrics`), the robustness curve (one step per hidden-face
    share), the whole report as ``evaluation/evaluation.json`` and every plot under ``plots/``."""
    registry = tracking.client()
    tracking.log_metrics(run_id, evaluation_metrics(report))
    tracking.log_history(run_id, ROBUSTNESS, robustness_curve(report))
    registry.log_dict(run_id, dict(report), "evaluation/evaluation.json")
    for path in sorted(Path(plots_dir).glob("*")):
        if path.suffix in (".png", ".json"):
            registry.log_artifact(run_id, str(path), artifact_path="plots")
