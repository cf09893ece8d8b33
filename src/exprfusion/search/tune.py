"""The hyper-parameter search: the paper's grid on Ray Tune, early stopping (synchronous successive halving or ASHA),
one MLflow child run per trial.

A search is one MLflow parent run (the searched lists, the settings its trials share, the best trial's selection
score); every trial is a child run created inside the trial's own process (see :mod:`exprfusion.search.trial`),
logging its point of the grid and the history of its holdout score, so MLflow's compare view shows the grid. Each
trial checkpoints every epoch into its folder of the search's storage; an interrupted search is restored (finished
trials are not run again, unfinished ones continue from their last epoch) and reuses its parent run and its trials'
child runs. The experiment folder is named by a hash of the search's definition, so a changed grid, config or
corpus never restores an unrelated search. The MLflow runs the driver writes are :mod:`exprfusion.search.search_runs`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import ray
from ray import tune

from exprfusion.core.atomic import atomic_open
from exprfusion.core.errors import InputError
from exprfusion.core.progress import console
from exprfusion.core.ray_runtime import ray_session as shared_ray_session
from exprfusion.data.corpus import Corpus
from exprfusion.data.split_tensors import training_splits
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.search.search_runs import close_stopped_trial, parent_run, search_params
from exprfusion.search.space import SearchSettings, SearchSpace, parse_tune_params, search_name
from exprfusion.search.successive_halving import RECORD_NAME
from exprfusion.search.trial import TrialContext, best_scores, train_trial
from exprfusion.tracking import runs as tracking
from exprfusion.tracking.metric_names import TRIAL_EPOCHS, selection_metrics
from exprfusion.training.epoch_report import EpochReport
from exprfusion.training.normalisation_choice import AUTO, NormalisationChoice, resolve_normalisation
from exprfusion.training.selection_check import SplitSize, search_warnings
from exprfusion.training.train_config import TrainConfig

METRIC = "best_macro_f1"  # a trial's running best selection macro-F1 (after voting + median): what it would keep
# The selection scores a trial reports to Tune each epoch (its best epoch's too, as best_<name>).
REPORTED_SCORES: tuple[str, ...] = ("macro_f1", "accuracy", "macro_f1_voting", "macro_f1_frame")
# Ray's own console output off: the driver prints one line per finished trial instead.
QUIET_ENV = {"RAY_AIR_NEW_OUTPUT": "0"}


@dataclass
class SearchResult:
    """The outcome of a search: the best configs, their validation metrics, and one row per trial."""

    best_model_config: dict[str, Any]
    best_train_config: dict[str, Any]
    best_metrics: dict[str, float]
    parent_run_id: str
    trials: pd.DataFrame
    total_trial_epochs: int
    # How ``normalisation: auto`` was decided before the trials (None: the normalisation was set).
    normalisation_choice: NormalisationChoice | None = None
    # The best trial's epochs as it ran them (selection scores, loss, lr): the train stage's record of the selection
    # run when it refits that trial instead of repeating it (exprfusion.search.final_training).
    best_history: list[EpochReport] = dataclasses.field(default_factory=list)
    # When the selection split could not tell the trials or the normalisations apart, and that split's size.
    selection_warnings: list[str] = dataclasses.field(default_factory=list)
    selection_split: SplitSize | None = None


class _SearchMonitor:
    """The driver's view of a running search: one line per finished trial, and closing runs the scheduler stopped."""

    def __init__(self, context: TrialContext, total: int, progress: Callable[[int, int], None] | None) -> None:
        self.context = context
        self.total = total
        self.progress = progress
        self.done: int | None = None

    def step(self, trials: list[Any]) -> None:
        """Count the trials a restored search had already finished (once, at the first step)."""
        if self.done is None:
            self.done = sum(trial.status in ("TERMINATED", "ERROR") for trial in trials)
            if self.progress:
                self.progress(self.done, self.total)

    def finished(self, trial: Any, error: bool = False) -> None:
        """Close the trial's child run if the trial could not (stopped by ASHA, failed) and print its line."""
        uri, result = self.context.tracking_uri, trial.last_result or {}
        run_id = tracking.find_child_run(
            self.context.experiment_id, self.context.parent_run_id, "trial_id", trial.trial_id, uri
        )
        epochs = int(result.get("epoch", 0))
        how = "failed" if error else "stopped early" if epochs < self.context.base_train.get("epochs", epochs) else ""
        if run_id and tracking.run_status(run_id, uri) == "RUNNING":
            close_stopped_trial(run_id, trial.trial_id, result, self.context.trials_dir, uri, error=error)
        self.done = (self.done or 0) + 1
        config = trial.config
        console.print(
            f"trial {self.done}/{self.total}  p={config.get('modality_dropout')} d={config.get('d_model')} "
            f"l={config.get('n_layers')}"
            + (f" readout={config['window_readout']}" if "window_readout" in config else "")
            + f"  macro_f1={result.get(METRIC, float('nan')):.4f}  epochs={epochs}"
            + (f"  ({how})" if how else ""),
            highlight=False,
        )
        if self.progress:
            self.progress(self.done, self.total)


_MONITORS: dict[str, _SearchMonitor] = {}


class _TrialEvents(tune.Callback):
    """Forwards trial events to the live monitor of the search named ``key``.

    Ray pickles the run config (callbacks included) with the experiment and reuses it on restore; holding only
    the key keeps this callback picklable and lets a restored search talk to the monitor of the current call.
    """

    def __init__(self, key: str) -> None:
        self.key = key

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        if monitor := _MONITORS.get(self.key):
            monitor.step(trials)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if monitor := _MONITORS.get(self.key):
            monitor.finished(trial)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if monitor := _MONITORS.get(self.key):
            monitor.finished(trial, error=True)


@contextmanager
def ray_session() -> Iterator[None]:
    """The search's Ray (:func:`exprfusion.core.ray_runtime.ray_session`): a local Ray gets every CPU of the machine."""
    with shared_ray_session(num_cpus=os.cpu_count()):
        yield


def trials_frame(results: Any, base_train: dict[str, Any]) -> pd.DataFrame:
    """One row per trial of a Ray ``ResultGrid``: its point (p, d, l, readout, lr, seed), best selection scores,
    status; ``readout`` is None where the search does not vary the window readout."""
    rows = []
    for result in results:
        config, metrics = result.config or {}, result.metrics or {}
        epochs_run = int(metrics.get("epoch", 0))
        status = "error" if result.error else "completed" if epochs_run >= base_train["epochs"] else "stopped"
        rows.append(
            {
                "trial_id": metrics.get("trial_id", ""),
                "p": config.get("modality_dropout"),
                "d": config.get("d_model"),
                "l": config.get("n_layers"),
                "readout": config.get("window_readout"),
                "lr": config.get("lr", base_train["lr"]),
                "seed": config.get("seed", base_train["seed"]),
                "macro_f1": metrics.get(METRIC, float("nan")),
                "accuracy": metrics.get("best_accuracy", float("nan")),
                "best_epoch": metrics.get("best_epoch", -1),
                "epochs_run": epochs_run,
                "status": status,
            }
        )
    # A fixed order whatever order Ray returns the trials in: the best trial is the first of equal scores.
    return pd.DataFrame(rows).sort_values(["p", "d", "l", "readout", "lr", "seed"], ignore_index=True, kind="stable")


def scheduler_record(experiment_dir: Path) -> Path:
    """Where successive halving keeps its scores and decisions: the search's own trials folder. (Ray copies the
    experiment folder's top-level .json and .pkl files aside on a restore and back over the folder later, which
    would put an older record back.)"""
    return experiment_dir / "trials" / RECORD_NAME


def _trial_limit(settings: SearchSettings, trials: int) -> None:
    """Refuse a cap on concurrent trials below the trials of a successive-halving search: Ray counts paused trials
    against the cap, so a rung wider than it would never fill. Such a search leaves the cap to the cluster's resources.
    """
    if settings.scheduler == "successive_halving" and (settings.max_concurrent_trials or trials) < trials:
        raise InputError(
            f"tune.max_concurrent_trials ({settings.max_concurrent_trials}) cannot cap a successive_halving search of "
            f"{trials} trials: its paused trials count against the cap, so a rung would never fill; leave it null "
            "(the cluster's resources cap the trials running at once) or raise cpus_per_trial"
        )


def run_search(
    corpus_root: str | Path,
    tune_params: dict[str, Any],
    base_model: dict[str, Any],
    base_train: dict[str, Any],
    *,
    storage: str | Path,
    experiment: str = tracking.DEFAULT_EXPERIMENT,
    resume: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> SearchResult:
    """Search the grid (or random space) of ``tune_params`` on Ray Tune, tracked in MLflow.

    Args:
        corpus_root: the corpus; every trial loads its splits from this path.
        tune_params: the ``tune`` section of params.yaml (see :mod:`exprfusion.search.space`).
        base_model: FusionConfig values every trial starts from (the searched keys are overridden).
        base_train: TrainConfig values every trial starts from; ``epochs`` is also ASHA's ``max_t``.
        storage: folder of Ray's experiment state and the trials' checkpoints (on a multi-node Ray cluster, a
            folder every node sees, as Ray itself requires).
        experiment: MLflow experiment of the parent run and its child runs.
        resume: restore an interrupted run of the same search from ``storage`` instead of starting over.
        progress: optional ``callback(finished_trials, total_trials)``.

    Returns:
        The best trial's configs and metrics, the parent run id and one row per trial.
    """
    space, settings = parse_tune_params(tune_params)
    _trial_limit(settings, space.n_trials())
    corpus_root = Path(corpus_root).resolve()
    corpus = Corpus(corpus_root)
    corpus_hash = corpus.content_hash()
    dims = {"visual_dim": corpus.visual_dim, "audio_dim": corpus.audio_dim}
    model = FusionConfig.from_dict({**base_model, **dims}, path="tune.model").to_dict()
    if base_model.get("ff_dim") is None:
        model["ff_dim"] = None  # resolved per trial as 4 * d_model, after the grid has set d_model
    train = TrainConfig.from_dict(base_train, path="tune.train").to_dict()
    choice = _choose_normalisation(corpus_root, model["normalisation"], train)
    if choice is not None:
        model["normalisation"] = choice.chosen  # every trial, and the search's name, take the choice
    storage = Path(storage).resolve()
    name = search_name(space, settings, model, train, corpus_hash)
    experiment_dir = storage / name
    restore = resume and tune.Tuner.can_restore(str(experiment_dir))
    if not restore:
        shutil.rmtree(experiment_dir, ignore_errors=True)
    experiment_id = tracking.configure_mlflow(experiment)
    tags = {"corpus_hash": corpus_hash, "search_mode": space.mode, "scheduler": settings.scheduler, "search": name}
    params = search_params(space, settings, model, train)
    parent_run_id = parent_run(experiment_id, storage / f"{name}.parent_run", restore, tags, params, corpus)
    if choice is not None:
        tracking.set_tags(parent_run_id, {"normalisation_choice": choice.summary()})
        tracking.log_metrics(parent_run_id, {f"normalisation_{k}": v for k, v in choice.scores.items()})
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    with ray_session():
        resources, concurrency = settings.trial_resources(ray.cluster_resources())
        context = TrialContext(
            str(corpus_root),
            str(experiment_dir / "trials"),
            model,
            train,
            tracking.tracking_uri(),
            experiment_id,
            parent_run_id,
            threads=max(1, int(settings.cpus_per_trial)),
            corpus_hash=corpus_hash,
        )
        trainable = tune.with_resources(tune.with_parameters(train_trial, context=context), resources)
        _MONITORS[name] = _SearchMonitor(context, space.n_trials(), progress)
        try:
            if restore:
                tuner = tune.Tuner.restore(str(experiment_dir), trainable=trainable, resume_errored=True)
            else:
                tuner = tune.Tuner(
                    trainable,
                    param_space=space.param_space(),
                    tune_config=tune.TuneConfig(
                        metric=METRIC,
                        mode="max",
                        scheduler=settings.make_scheduler(
                            train["epochs"], trials=space.n_trials(), record=scheduler_record(experiment_dir)
                        ),
                        num_samples=space.num_samples,
                        # successive halving: paused trials would count against Ray's cap (see _trial_limit)
                        max_concurrent_trials=None if settings.scheduler == "successive_halving" else concurrency,
                        reuse_actors=True,  # a worker keeps torch and mlflow imported from one trial to the next
                    ),
                    run_config=tune.RunConfig(
                        name=name,
                        storage_path=str(storage),
                        failure_config=tune.FailureConfig(max_failures=2),
                        callbacks=[_TrialEvents(name)],
                        verbose=0,
                    ),
                )
            results = tuner.fit()
        finally:
            _MONITORS.pop(name, None)
    summary = _summarise(results, model, train, parent_run_id, experiment_dir)
    scores = summary.trials.loc[summary.trials["status"] != "error", "macro_f1"].tolist()
    warnings, size = search_warnings(
        corpus_root, train, scores, summary.best_metrics.get("macro_f1_ci"), choice.warnings if choice else ()
    )
    for warning in warnings:
        console.print(f"warning: {warning}", style="bold yellow", highlight=False, markup=False)
    return dataclasses.replace(summary, normalisation_choice=choice, selection_warnings=warnings, selection_split=size)


def _choose_normalisation(corpus_root: Path, normalisation: str, train: dict[str, Any]) -> NormalisationChoice | None:
    """Decide ``normalisation: auto`` once, in the driver, on the split the trials select on (None when set)."""
    if normalisation != AUTO:
        return None
    train_split, validation_split = training_splits(corpus_root)
    return resolve_normalisation(
        normalisation, train["selection"], train["holdout_fraction"], train_split, validation_split
    )


def trial_history(metrics: pd.DataFrame | None) -> list[EpochReport]:
    """A trial's epochs from its Ray result's ``metrics_dataframe`` (one row per report), in order."""
    if metrics is None or metrics.empty or "epoch" not in metrics:
        return []
    # A restarted trial reports its last epoch again (exprfusion.search.trial): the first report holds its timing.
    rows = metrics.sort_values("epoch", kind="stable").drop_duplicates("epoch", keep="first")
    return [
        EpochReport(
            epoch=int(row["epoch"]) - 1,  # Tune is told epochs counted from 1
            train_loss=float(row.get("train_loss", float("nan"))),
            lr=float(row.get("lr", float("nan"))),
            seconds=float(row.get("time_this_iter_s", float("nan"))),
            metrics={key: float(row[key]) for key in REPORTED_SCORES if key in row and pd.notna(row[key])},
        )
        for _, row in rows.iterrows()
    ]


def _summarise(results: Any, model: dict, train: dict, parent_run_id: str, experiment_dir: Path) -> SearchResult:
    """Pick the best trial, record it on the parent run and close the parent run."""
    frame = trials_frame(results, train)
    finished = frame[frame["status"] != "error"].dropna(subset=["macro_f1"])
    if finished.empty:
        tracking.finish_run(parent_run_id, "FAILED")
        raise RuntimeError(f"every trial of the search failed; see the trial logs under {experiment_dir}")
    best_row = finished.loc[finished["macro_f1"].idxmax()]
    best = next(r for r in results if (r.metrics or {}).get("trial_id") == best_row["trial_id"])
    point = best.config
    best_model = {**model, **{k: v for k, v in point.items() if k in SearchSpace.MODEL_KEYS}}
    best_train = {**train, **{k: v for k, v in point.items() if k in SearchSpace.TRAIN_KEYS}}
    best_metrics = {k.removeprefix("best_"): float(v) for k, v in best.metrics.items() if k.startswith("best_")}
    best_metrics["best_epoch"] = int(best_metrics.pop("epoch"))
    interval = best_scores(experiment_dir / "trials", best_row["trial_id"]).get("macro_f1_ci")
    if interval is not None:
        best_metrics["macro_f1_ci"] = interval
    total_epochs = int(frame["epochs_run"].sum())
    tracking.log_metrics(parent_run_id, {**selection_metrics(best_metrics), TRIAL_EPOCHS: total_epochs})
    tracking.set_tags(
        parent_run_id,
        {"best_trial": best_row["trial_id"], "trials": len(frame), **{f"best.{k}": v for k, v in point.items()}},
    )
    tracking.finish_run(parent_run_id, "FINISHED")
    return SearchResult(
        best_model,
        best_train,
        best_metrics,
        parent_run_id,
        frame,
        total_epochs,
        best_history=trial_history(best.metrics_dataframe),
    )


def write_best(result: SearchResult, path: str | Path) -> Path:
    """Write ``best.json`` atomically (read by the train stage): the best trial's ``model`` and ``train`` configs, its
    selection ``metrics`` (``best_epoch`` among them) and ``history``, ``normalisation_choice``, ``parent_run_id``,
    the number of ``trials``, the ``selection_split``'s size and the ``selection_warnings``."""
    path = Path(path)
    payload = {
        "model": result.best_model_config,
        "train": result.best_train_config,
        "normalisation_choice": asdict(result.normalisation_choice) if result.normalisation_choice else None,
        "metrics": result.best_metrics,
        "history": [asdict(report) for report in result.best_history],
        "parent_run_id": result.parent_run_id,
        "trials": len(result.trials),
        "selection_split": asdict(result.selection_split) if result.selection_split else None,
        "selection_warnings": result.selection_warnings,
    }
    with atomic_open(path) as handle:
        json.dump(payload, handle, indent=2)
        handle.write("\n")
    return path
