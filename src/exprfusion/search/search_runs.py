"""The MLflow runs of a search as the driver writes them: the parent run with its params, and the runs of trials the
scheduler stopped.

The parent run logs each param once: the searched lists (``grid.<key>``), how the search runs (``search.<key>``) and
the settings every trial shares as the trials use them (``model.<key>``, ``train.<key>``); never the base value of a
searched key, which no trial used. Each trial's run logs its own point (:func:`exprfusion.search.trial.trial_params`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exprfusion.data.corpus import Corpus
from exprfusion.search.space import SearchSettings, SearchSpace
from exprfusion.search.trial import best_scores
from exprfusion.tracking import runs as tracking
from exprfusion.tracking.metric_names import EPOCH, selection_metrics


def search_params(
    space: SearchSpace, settings: SearchSettings, model: dict[str, Any], train: dict[str, Any]
) -> dict[str, Any]:
    """The params of a search's MLflow run (module docstring).

    An unset ``ff_dim`` is left out too (each trial's is 4 * its d_model, logged on the trial's run), and
    ``train.refit`` is the trials' (false: a trial only selects; the train stage refits the winner).
    """
    searched = space.dimensions()
    params: dict[str, Any] = {f"grid.{key}": values for key, values in searched.items()}
    sampling = {"mode": space.mode, "num_samples": space.num_samples}
    params.update({f"search.{key}": value for key, value in {**sampling, **vars(settings)}.items()})
    shared_model = {k: v for k, v in model.items() if k not in searched and not (k == "ff_dim" and v is None)}
    shared_train = {k: v for k, v in {**train, "refit": False}.items() if k not in searched}
    params.update(tracking.flatten_params(shared_model, shared_train))
    return params


def parent_run(experiment_id: str, marker: Path, reuse: bool, tags: dict, params: dict, corpus: Corpus) -> str:
    """The search's parent run: the one a restored search already has, else a new one (its id kept in ``marker``).

    A new parent run carries MLflow's source tags and the corpus as its dataset input.
    """
    if reuse and marker.is_file():
        run_id = marker.read_text().strip()
        if tracking.run_status(run_id):
            return run_id
    run_tags = {**tags, **tracking.source_tags()}
    run_id = tracking.start_run(experiment_id, marker.name.removesuffix(".parent_run"), tags=run_tags)
    tracking.log_params(run_id, params)
    tracking.log_corpus_input(run_id, corpus.root, corpus.content_hash())
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(run_id)
    return run_id


def trial_best(trial_id: str, result: dict[str, Any], trials_dir: str | Path) -> dict[str, Any]:
    """A trial's best epoch (``epoch``, from 0) and its selection scores: as its folder keeps them (with the
    interval), else from its last Tune result's ``best_*`` values."""
    kept = best_scores(trials_dir, trial_id)
    if kept:
        return kept
    best = {key.removeprefix("best_"): value for key, value in result.items() if key.startswith("best_")}
    return {**best, "epoch": int(best.get("epoch", -1))}


def close_stopped_trial(
    run_id: str, trial_id: str, result: dict[str, Any], trials_dir: str | Path, uri: str, *, error: bool = False
) -> None:
    """Close the run of a trial that could not close it itself (stopped by the scheduler, or failed).

    A stopped trial gets the headline it would have logged (its best epoch's selection score, with the interval)
    and the tag ``stopped_by: scheduler``; its run ends when its last epoch was logged, since it may have waited at
    a rung after its work was done.
    """
    if not error:
        best = trial_best(trial_id, result, trials_dir)
        if "macro_f1" in best:
            tracking.log_metrics(run_id, selection_metrics({**best, "best_epoch": best["epoch"]}), uri=uri)
        tracking.set_tags(run_id, {"stopped_by": "scheduler"}, uri)
    epochs = tracking.client(uri).get_metric_history(run_id, EPOCH)
    ended = max((metric.timestamp for metric in epochs), default=None)  # when its last epoch was logged
    tracking.finish_run(run_id, "FAILED" if error else "FINISHED", uri, end_time=ended)
