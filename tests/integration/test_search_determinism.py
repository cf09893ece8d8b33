"""Successive halving on a real local Ray: the same search, timed differently, stops the same trials and picks the same
winner, with the same scores to the last digit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import ray
from factories import write_small_corpus

from exprfusion.core.errors import InputError
from exprfusion.search.successive_halving import RECORD_NAME, trial_number
from exprfusion.search.trial import REPORT_DELAY_ENV
from exprfusion.search.tune import SearchResult, run_search
from exprfusion.tracking import runs as tracking

pytestmark = pytest.mark.integration

MODEL = {"d_model": 16, "n_layers": 1, "n_heads": 2}
TRAIN = {"epochs": 3, "batch_size": 4, "window": 16, "stride": 8, "eval_stride": 8, "median_kernel": 3, "lr": 3e-3}
# Four trials, numbered by Ray in grid order (the first key varies fastest): 0 = (3e-3, seed 0), 1 = (3e-4, seed 0),
# 2 = (3e-3, seed 1), 3 = (3e-4, seed 1). Rungs at epochs 1 and 2 (grace 1, factor 2, 3 epochs).
GRID = {"modality_dropout": [0.0], "d_model": [16], "n_layers": [1], "window_readout": ["none"]}
TUNE = {
    "grid": {**GRID, "lr": [3e-3, 3e-4], "seed": [0, 1]},
    "search": {"scheduler": "successive_halving", "grace_period": 1, "reduction_factor": 2},
}
# Longer than a trial needs to start in a freed slot and train an epoch on this corpus (a few seconds).
DELAY_S = 12


def _search(corpus: Path, storage: Path, name: str, delay: str) -> tuple[SearchResult, dict]:
    """One search on a fresh two-CPU Ray whose workers see ``REPORT_DELAY_ENV=delay``; the result and the record."""
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {REPORT_DELAY_ENV: delay}}
    )
    try:
        result = run_search(corpus, TUNE, MODEL, TRAIN, storage=storage, experiment=name, resume=False)
    finally:
        ray.shutdown()
    (record,) = storage.glob(f"*/trials/{RECORD_NAME}")
    return result, json.loads(record.read_text())


def _numbered(record: dict) -> tuple[list[list[int]], list[list[int]]]:
    """The record's arrivals per rung and kept trials per rung, by trial number (ids differ between searches)."""
    arrivals = [[trial_number(trial_id) for trial_id in scores] for scores in record["scores"]]
    kept = [[trial_number(trial_id) for trial_id in trials] for trials in record["promoted"]]
    return arrivals, kept


def _outcome(result: SearchResult) -> list[tuple]:
    """Each trial's point, epochs run, status and best score, in the trials frame's fixed order."""
    frame = result.trials
    return list(zip(frame["lr"], frame["seed"], frame["epochs_run"], frame["status"], frame["macro_f1"], strict=True))


def test_a_cap_below_the_trials_is_refused_before_anything_runs(tmp_path):
    tune_params = {"grid": TUNE["grid"], "search": {**TUNE["search"], "max_concurrent_trials": 2}}
    with pytest.raises(InputError, match=r"max_concurrent_trials \(2\) cannot cap a successive_halving search of 4"):
        run_search(tmp_path / "unused", tune_params, MODEL, TRAIN, storage=tmp_path / "ray")


@pytest.mark.slow
def test_delaying_one_trial_or_another_changes_the_arrivals_but_not_the_outcome(tmp_path, monkeypatch):
    monkeypatch.setenv(tracking.TRACKING_URI_ENV, f"sqlite:///{tmp_path / 'mlflow.db'}")
    corpus = write_small_corpus(tmp_path / "corpus")
    first, first_record = _search(corpus, tmp_path / "ray-a", "delay-0", f"0:{DELAY_S}")
    second, second_record = _search(corpus, tmp_path / "ray-b", "delay-1", f"1:{DELAY_S}")
    first_arrivals, first_kept = _numbered(first_record)
    second_arrivals, second_kept = _numbered(second_record)

    # Control: the delay reorders the first rung. Trials 0 and 1 start together in the two slots; trial 2 starts only
    # in the slot the undelayed one frees at the rung, and still arrives before the delayed one.
    assert first_arrivals[0].index(0) > first_arrivals[0].index(2), first_arrivals
    assert second_arrivals[0].index(1) > second_arrivals[0].index(2), second_arrivals
    assert second_arrivals[0].index(0) < second_arrivals[0].index(2), second_arrivals
    assert first_arrivals != second_arrivals

    # The outcome: the same rung decisions, scores, stopped set and winner.
    assert first_kept == second_kept
    assert [sorted(scores.values()) for scores in first_record["scores"]] == [
        sorted(scores.values()) for scores in second_record["scores"]
    ], "the same scores at every rung, to the last digit"
    assert _outcome(first) == _outcome(second)
    assert first.best_model_config == second.best_model_config
    assert first.best_train_config == second.best_train_config
    assert first.best_metrics == second.best_metrics
    assert [report.metrics for report in first.best_history] == [report.metrics for report in second.best_history]

    # By hand: 4 trials, keep ceil(4 / 2) = 2 at epoch 1 and ceil(2 / 2) = 1 at epoch 2 -> epochs run 1, 1, 2, 3.
    for result, kept in ((first, first_kept), (second, second_kept)):
        assert [len(trials) for trials in kept] == [2, 1] and set(kept[1]) <= set(kept[0])
        frame = result.trials
        assert sorted(frame["epochs_run"]) == [1, 1, 2, 3] and result.total_trial_epochs == 7
        assert sorted(frame["status"]) == ["completed", "stopped", "stopped", "stopped"]
        winner = frame.loc[frame["macro_f1"].idxmax()]
        assert winner["epochs_run"] == 3
        # The winner was paused at both rungs and reported its rung epochs again on resuming: one epoch each.
        assert [report.epoch for report in result.best_history] == [0, 1, 2]

    # One MLflow child run per trial, each closed, logged once per epoch it ran; the scheduler closed the stopped ones.
    client = tracking.client()
    for name, result in (("delay-0", first), ("delay-1", second)):
        runs = client.search_runs([client.get_experiment_by_name(name).experiment_id])
        children = {run.data.tags["trial_id"]: run for run in runs if "mlflow.parentRunId" in run.data.tags}
        frame = result.trials.set_index("trial_id")
        assert sorted(children) == sorted(frame.index)
        for trial_id, run in children.items():
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "epoch_macro_f1"))
            assert run.info.status == "FINISHED"
            assert steps == list(range(frame.loc[trial_id, "epochs_run"])), "each epoch logged once, none repeated"
            stopped_by = "scheduler" if frame.loc[trial_id, "status"] == "stopped" else "max_epochs"
            assert run.data.tags["stopped_by"] == stopped_by
