"""One trial of the search, as it runs inside a Ray worker: train, log to its MLflow child run, report to Tune.

A trial's run holds its point of the grid as params, the history of its holdout score (``epoch_macro_f1``, step =
epoch), and its headline ``selection_macro_f1``: the holdout score of its best epoch, with its interval
(:mod:`exprfusion.tracking.metric_names`). A trial never scores the validation split.

Every trial trains in its own folder of the search's storage (``<experiment>/trials/<trial_id>/``), where
:func:`~exprfusion.training.train.train_model` checkpoints every epoch and ``trial.json`` keeps the trial's MLflow
child run
id and best epoch. A trial started again (a retried failure, a restored search) resumes from there: the same
training run, the same child run. The folder, not a Ray checkpoint, is the trial's state: Ray prunes its own
checkpoints before it snapshots the experiment, so a search killed in between would reference one that is gone.
A trial started again first reports the last epoch it finished, so the scheduler decides on that epoch before the trial
trains further (successive halving pauses trials at its rungs and restarts the ones it keeps).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from ray import tune

from exprfusion.core.atomic import atomic_open
from exprfusion.core.environment import environment, variable
from exprfusion.data.split_tensors import training_splits
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.search.space import SearchSpace
from exprfusion.search.successive_halving import trial_number
from exprfusion.tracking import runs as tracking
from exprfusion.tracking.metric_names import selection_metrics
from exprfusion.training.epoch_report import EpochReport
from exprfusion.training.train import TrainResult, train_model
from exprfusion.training.train_config import TrainConfig

TRIAL_STATE = "trial.json"
# A test hook that perturbs when trials reach the scheduler: "<trial number>:<seconds>[,...]" makes the trials so
# numbered (the counter ending Ray's trial id, in grid order) wait that long before each report. Read in the trial's
# process (a local Ray's workers inherit the environment Ray started with). Unset, nothing waits.
REPORT_DELAY_ENV = variable("trial_report_delay")


@dataclass(frozen=True)
class TrialContext:
    """What every trial needs besides its sampled point; rebuilt by the driver on every call, never restored."""

    corpus_root: str
    trials_dir: str
    base_model: dict[str, Any]
    base_train: dict[str, Any]
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    threads: int = 1
    corpus_hash: str = ""


def trial_configs(context: TrialContext, point: dict[str, Any]) -> tuple[FusionConfig, TrainConfig]:
    """The model and train configs of one trial: the base configs with the sampled values put in."""
    model = {**context.base_model, **{k: v for k, v in point.items() if k in SearchSpace.MODEL_KEYS}}
    train = {**context.base_train, **{k: v for k, v in point.items() if k in SearchSpace.TRAIN_KEYS}}
    # A trial only selects: it is scored on its holdout and never refit on the whole training split (the train stage
    # refits the winner).
    return FusionConfig.from_dict(model), TrainConfig.from_dict({**train, "refit": False})


def trial_params(context: TrialContext, point: dict[str, Any]) -> dict[str, Any]:
    """What a trial's MLflow run logs as params: its point of the grid (``model.d_model``, ``train.lr``, ...) and the
    feed-forward width when the point sets it (``ff_dim`` unset: 4 * d_model). The settings every trial shares are
    logged once, on the search's run (:func:`exprfusion.search.search_runs.search_params`)."""
    model, train = trial_configs(context, point)
    params = tracking.flatten_params(
        {key: getattr(model, key) for key in SearchSpace.MODEL_KEYS if key in point},
        {key: getattr(train, key) for key in SearchSpace.TRAIN_KEYS if key in point},
    )
    if context.base_model.get("ff_dim") is None:
        params["model.ff_dim"] = model.feedforward_dim
    return params


def _write_state(run_dir: Path, state: dict[str, Any]) -> None:
    with atomic_open(run_dir / TRIAL_STATE) as handle:
        json.dump(state, handle)


def _read_state(run_dir: Path) -> dict[str, Any]:
    path = run_dir / TRIAL_STATE
    return json.loads(path.read_text()) if path.is_file() else {}


def best_scores(trials_dir: str | Path, trial_id: str) -> dict[str, Any]:
    """The selection scores of a trial's best epoch so far, as its folder keeps them (interval included; empty
    before its first epoch)."""
    best = _read_state(Path(trials_dir) / trial_id).get("best") or {}
    return best if best.get("epoch", -1) >= 0 else {}


def _child_run(context: TrialContext, state: dict[str, Any], trial_id: str, params: dict[str, Any]) -> str:
    """The trial's MLflow child run: the one in its state, else the one tagged with its id, else a new one."""
    uri, experiment = context.tracking_uri, context.experiment_id
    known = state.get("child_run_id")
    if known and tracking.run_status(known, uri):
        return known
    found = tracking.find_child_run(experiment, context.parent_run_id, "trial_id", trial_id, uri)
    if found:
        return found
    tags = {"trial_id": trial_id, **tracking.parent_source_tags(context.parent_run_id, uri)}
    run_id = tracking.start_run(
        experiment, f"trial-{trial_id}", tags=tags, parent_run_id=context.parent_run_id, uri=uri
    )
    tracking.log_params(run_id, params, uri)
    if context.corpus_hash:
        tracking.log_corpus_input(run_id, context.corpus_root, context.corpus_hash, uri)
    return run_id


def report_delay(trial_id: str, spec: str | None = None) -> float:
    """The seconds :data:`REPORT_DELAY_ENV` (or ``spec``) asks trial ``trial_id`` to wait before each report."""
    spec = environment().trial_report_delay if spec is None else spec
    number = trial_number(trial_id)
    for item in filter(None, (part.strip() for part in spec.split(","))):
        which, _, seconds = item.partition(":")
        if number is not None and int(which) == number:
            return float(seconds)
    return 0.0


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a metrics dict (per-class F1 goes to MLflow, not to the scheduler)."""
    return {key: value for key, value in metrics.items() if isinstance(value, int | float)}


class EpochReporter:
    """The ``train_model`` callback of a trial: logs each epoch to MLflow, keeps the trial state, reports to Tune.

    The last epoch's report is held back until :meth:`finish`: a scheduler may stop a trial at any report, and the
    trial closes its MLflow run (per-class F1 of the best epoch) before it gives the scheduler that chance. The trial
    state keeps each epoch's report (``last``), which :meth:`resume` sends again when the trial starts again.
    """

    def __init__(
        self, run_id: str, run_dir: Path, state: dict[str, Any], epochs: int, uri: str, delay: float = 0.0
    ) -> None:
        self.run_id = run_id
        self.run_dir = run_dir
        self.epochs = epochs
        self.delay = delay  # seconds before each report (REPORT_DELAY_ENV)
        self.best: dict[str, Any] = state.get("best", {"epoch": -1, "macro_f1": -1.0})
        self.log_epoch = tracking.epoch_logger(run_id, uri)
        self.pending: dict[str, Any] | None = None
        self.reported = False

    def metrics(self, report: EpochReport) -> dict[str, Any]:
        """What Tune receives for an epoch: its scalar validation metrics, the best epoch's (``best_*``), ``epoch``."""
        return {
            **_scalars(report.metrics),
            **{f"best_{key}": value for key, value in _scalars(self.best).items()},
            "epoch": report.epoch + 1,
            "train_loss": report.train_loss,
            "lr": report.lr,
        }

    def __call__(self, report: EpochReport) -> None:
        self.log_epoch(report)
        if report.metrics["macro_f1"] > self.best["macro_f1"]:
            self.best = {"epoch": report.epoch, **report.metrics}
        self.pending = self.metrics(report)
        _write_state(self.run_dir, {"child_run_id": self.run_id, "best": self.best, "last": self.pending})
        if report.epoch + 1 < self.epochs:
            self._report()

    def resume(self, state: dict[str, Any]) -> None:
        """Report again the last epoch a restarted trial finished, unless it was the last (:meth:`finish` sends it).

        The scheduler decides on it before the trial trains further: a trial that waited at a rung of successive
        halving, or that a decided rung stopped, is paused or stopped again instead of training past the rung.
        """
        last = state.get("last")
        if last and last["epoch"] < self.epochs:
            self._send(last)

    def _report(self) -> None:
        metrics, self.pending = self.pending, None
        self.reported = True
        self._send(metrics)

    def _send(self, metrics: dict[str, Any]) -> None:
        if self.delay:
            time.sleep(self.delay)
        tune.report(metrics)

    def finish(self, result: TrainResult) -> None:
        """Report the held-back last epoch (a trial that had nothing left to train: its last epoch again).

        Its ``best_*`` values are the training run's own best epoch, which is authoritative after a resume.
        """
        if result.history and (self.pending is not None or not self.reported):
            self.best = {"epoch": result.best_epoch, **result.best_metrics}
            self.pending = self.metrics(result.history[-1])
        if self.pending is not None:
            self._report()


def close_child_run(run_id: str, result: TrainResult, uri: str) -> None:
    """Log the trial's headline (its selection score at its best epoch, with the interval) and finish its run."""
    tracking.log_metrics(run_id, selection_metrics({**result.best_metrics, "best_epoch": result.best_epoch}), uri=uri)
    tracking.set_tags(run_id, {"stopped_by": "patience" if result.stopped_early else "max_epochs"}, uri)
    tracking.finish_run(run_id, "FINISHED", uri)


def train_trial(point: dict[str, Any], context: TrialContext) -> None:
    """The Ray Tune function trainable: one training run of ``point``, resumed from the trial's folder."""
    torch.set_num_threads(context.threads)
    trial_id = tune.get_context().get_trial_id()
    model_config, train_config = trial_configs(context, point)
    run_dir = Path(context.trials_dir) / trial_id
    run_dir.mkdir(parents=True, exist_ok=True)
    state = _read_state(run_dir)
    run_id = _child_run(context, state, trial_id, trial_params(context, point))
    _write_state(run_dir, {**state, "child_run_id": run_id})
    delay = report_delay(trial_id)
    reporter = EpochReporter(run_id, run_dir, state, train_config.epochs, context.tracking_uri, delay)
    reporter.resume(state)
    splits = training_splits(context.corpus_root)  # a reused worker keeps them from its previous trial
    result = train_model(  # a trial only selects: the validation split is scored once, for the final model
        context.corpus_root,
        model_config,
        train_config,
        run_dir=run_dir,
        callback=reporter,
        splits=splits,
        score_validation=False,
    )
    if tracking.run_status(run_id, context.tracking_uri) == "RUNNING":
        close_child_run(run_id, result, context.tracking_uri)
    reporter.finish(result)
