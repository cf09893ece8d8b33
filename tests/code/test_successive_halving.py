"""Synchronous successive halving: the rung decision, driven through Ray's scheduler interface by a fake controller."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from exprfusion.search.successive_halving import (
    RECORD_NAME,
    SuccessiveHalvingScheduler,
    rung_milestones,
    rung_survivors,
    trial_number,
)
from exprfusion.search.trial import report_delay

CONTINUE, PAUSE, STOP = "CONTINUE", "PAUSE", "STOP"
METRIC = "best_macro_f1"


class FakeTrial:
    """What the scheduler reads of a Ray trial: its id, status and whether a save is in flight."""

    def __init__(self, number: int, status: str = "PENDING") -> None:
        self.trial_id = f"ab12c_{number:05d}"
        self.status = status
        self.is_saving = False


class FakeController:
    """The part of Ray's TuneController a scheduler calls, acting on decisions as Ray does."""

    def __init__(self, scheduler: SuccessiveHalvingScheduler) -> None:
        self.scheduler = scheduler
        self.trials: list[FakeTrial] = []
        self.stopped: list[int] = []  # trial numbers, in the order the scheduler stopped paused or pending trials

    def add(self, *trials: FakeTrial) -> None:
        for trial in trials:
            self.trials.append(trial)
            self.scheduler.on_trial_add(self, trial)

    def get_trials(self) -> list[FakeTrial]:
        return list(self.trials)

    def stop_trial(self, trial: FakeTrial) -> None:
        assert trial.status == "PAUSED"
        trial.status = "TERMINATED"
        self.stopped.append(trial_number(trial.trial_id))
        self.scheduler.on_trial_remove(self, trial)

    def report(self, trial: FakeTrial, epoch: int, score: float) -> str:
        """One result of a running trial; the scheduler's decision is applied to the trial's status."""
        trial.status = "RUNNING"
        decision = self.scheduler.on_trial_result(self, trial, {"epoch": epoch, METRIC: score})
        if decision == PAUSE:
            trial.status = "PAUSED"
        elif decision == STOP:
            trial.status = "TERMINATED"
            self.scheduler.on_trial_complete(self, trial, {})
        return decision

    def chosen(self) -> int | None:
        trial = self.scheduler.choose_trial_to_run(self)
        return None if trial is None else trial_number(trial.trial_id)


def _scheduler(trials: int, record: Path | None = None, **kwargs) -> SuccessiveHalvingScheduler:
    settings = {"max_t": 4, "grace_period": 1, "reduction_factor": 2, **kwargs}
    scheduler = SuccessiveHalvingScheduler(trials=trials, record=record, **settings)
    assert scheduler.set_search_properties(METRIC, "max")
    return scheduler


def test_rungs_lie_at_grace_times_powers_of_the_factor_below_the_last_epoch():
    assert rung_milestones(4, 1, 2) == [1, 2]
    assert rung_milestones(2, 1, 3) == [1], "params.yaml: grace 1, factor 3, 2 epochs"
    assert rung_milestones(12, 2, 3) == [2, 6], "the paper's grid: 18 is past 12 epochs"
    assert rung_milestones(1, 1, 3) == [], "no epoch is left to stop a trial at"
    assert trial_number("4fa2c_00013") == 13 and trial_number("custom") is None


def test_a_rung_keeps_the_best_third_rounded_up_and_ties_go_to_the_grid_order():
    order = {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4}.__getitem__
    # 5 scores, factor 2: ceil(5 / 2) = 3 kept. b is best; c, d, e tie at 0.4 and the first two in order go on.
    assert rung_survivors({"e": 0.4, "d": 0.4, "a": 0.3, "c": 0.4, "b": 0.5}, order, 2) == ["b", "c", "d"]
    # Reversed order: the tie now goes to e and d.
    reverse = {"a": 4, "b": 3, "c": 2, "d": 1, "e": 0}.__getitem__
    assert rung_survivors({"e": 0.4, "d": 0.4, "a": 0.3, "c": 0.4, "b": 0.5}, reverse, 2) == ["b", "e", "d"]
    # NaN ranks below every number; ceil(3 / 3) = 1; mode min keeps the lowest.
    assert rung_survivors({"a": math.nan, "b": 0.1, "c": 0.2}, order, 3) == ["c"]
    assert rung_survivors({"a": math.nan, "b": 0.1, "c": 0.2}, order, 3, mode="min") == ["b"]
    assert rung_survivors({}, order, 3) == []


def test_a_rung_is_decided_only_once_every_trial_reported_whatever_the_arrival_order():
    scheduler = _scheduler(trials=5)
    controller = FakeController(scheduler)
    trials = [FakeTrial(n) for n in range(5)]
    controller.add(*trials[:4])  # trial 4 is not added yet

    # Epoch 1 (rung 0). Arrival order 3, 2, 0: every one waits, paused.
    for n, score in ((3, 0.4), (2, 0.4), (0, 0.3)):
        assert controller.report(trials[n], 1, score) == PAUSE
    assert controller.report(trials[1], 1, 0.5) == PAUSE, "4 of 5 trials in: trial 4 is still to come"
    assert controller.chosen() is None and controller.stopped == []
    controller.add(trials[4])
    assert controller.chosen() == 4, "the pending trial runs; the paused ones wait"
    # The last report completes the rung: keep ceil(5 / 2) = 3 = trial 1 (0.5), then 2 and 3 of the three 0.4s
    # (grid order) although 4 arrived last. Trial 4 is the current one: its decision is returned, not imposed.
    assert controller.report(trials[4], 1, 0.4) == STOP
    assert controller.stopped == [0], "the paused trial left behind is stopped"
    assert scheduler._promoted[0] == ["ab12c_00001", "ab12c_00002", "ab12c_00003"]
    assert controller.chosen() == 1, "the kept paused trials resume, first in grid order"

    # Epoch 2 (rung 1): 3 trials, keep ceil(3 / 2) = 2. Trial 1 resumes and reports its rung epoch first.
    trials[1].status = "RUNNING"
    assert controller.report(trials[1], 2, 0.55) == PAUSE
    trials[3].status = "RUNNING"
    assert controller.report(trials[3], 2, math.nan) == PAUSE
    assert controller.report(trials[2], 2, 0.6) == CONTINUE, "the best of the rung goes on at once"
    assert controller.stopped == [0, 3], "NaN ranks last"
    assert controller.chosen() == 1
    assert controller.report(trials[1], 3, 0.7) == CONTINUE, "no rung at epoch 3 or 4 (max_t)"
    assert controller.report(trials[2], 4, 0.65) == CONTINUE


def test_a_trial_that_ends_before_its_rung_leaves_it_and_the_rung_is_decided_at_the_next_step():
    scheduler = _scheduler(trials=3)
    controller = FakeController(scheduler)
    trials = [FakeTrial(n) for n in range(3)]
    controller.add(*trials)
    assert controller.report(trials[0], 1, 0.2) == PAUSE
    assert controller.report(trials[1], 1, 0.1) == PAUSE
    assert scheduler._promoted[0] is None, "control: trial 2 is still to report"
    trials[2].status = "ERROR"
    scheduler.on_trial_error(controller, trials[2])  # failed for good before epoch 1
    assert scheduler._promoted[0] is None, "an error is not acted on at once: Ray may add the trial again"
    assert controller.chosen() == 0, "ceil(2 / 2) = 1 kept: trial 0 resumes"
    assert controller.stopped == [1]


def test_a_restored_search_reads_the_record_and_makes_the_same_decisions(tmp_path):
    record = tmp_path / RECORD_NAME
    first = _scheduler(trials=3, record=record)
    controller = FakeController(first)
    trials = [FakeTrial(n) for n in range(3)]
    controller.add(*trials)
    assert controller.report(trials[2], 1, 0.9) == PAUSE
    assert controller.report(trials[0], 1, 0.1) == PAUSE
    saved = json.loads(record.read_text())
    assert list(saved["scores"][0]) == ["ab12c_00002", "ab12c_00000"], "scores in arrival order"
    assert saved["promoted"] == [None, None]

    # Killed here. Ray restores the unfinished trials as PENDING and builds a fresh scheduler from its pickle.
    restored = [FakeTrial(n) for n in (1, 2, 0)]  # Ray re-adds trials latest result first
    second = _scheduler(trials=3, record=record)
    controller = FakeController(second)
    controller.add(*restored)
    trial_1, trial_2, trial_0 = restored
    # Trial 2 restarts and first reports the epoch it had finished: still waiting, so paused again.
    assert controller.report(trial_2, 1, 0.9) == PAUSE
    assert controller.report(trial_1, 1, 0.5) == CONTINUE, "ceil(3 / 2) = 2 kept: trials 2 and 1 of 0.9, 0.5, 0.1"
    assert json.loads(record.read_text())["promoted"][0] == ["ab12c_00002", "ab12c_00001"]
    assert controller.stopped == [] and trial_0.status == "PENDING", "left to stop at its first report"
    assert controller.report(trial_0, 1, 0.1) == STOP, "trial 0 restarts, reports its epoch again and stops"

    # Killed again after the decision: a third scheduler stops trial 0 at the epoch it reports again, before it trains
    # further, and lets trial 2 go on.
    third = _scheduler(trials=3, record=record)
    controller = FakeController(third)
    trial_0, trial_2 = FakeTrial(0), FakeTrial(2)
    controller.add(trial_0, FakeTrial(1, status="TERMINATED"), trial_2)
    assert controller.chosen() == 0, "pending trials run, first in grid order"
    assert controller.report(trial_0, 1, 0.1) == STOP
    assert controller.report(trial_2, 1, 0.9) == CONTINUE
    assert controller.stopped == []


def test_trial_epochs_of_the_params_grid_and_the_papers_grid_by_counting():
    """Every trial reports each epoch in turn, rung by rung; the count matches ceil-halving by hand."""

    def trial_epochs(n_trials: int, epochs: int, grace: int, factor: int) -> int:
        scheduler = _scheduler(trials=n_trials, max_t=epochs, grace_period=grace, reduction_factor=factor)
        controller = FakeController(scheduler)
        trials = [FakeTrial(n) for n in range(n_trials)]
        controller.add(*trials)
        ran = dict.fromkeys(range(n_trials), 0)
        for epoch in range(1, epochs + 1):
            for n, trial in enumerate(trials):
                if trial.status != "TERMINATED" and ran[n] == epoch - 1:
                    ran[n] = epoch
                    controller.report(trial, epoch, score=n / n_trials)
        return sum(ran.values())

    # params.yaml: 8 points, 2 epochs, rung at 1 keeps ceil(8 / 3) = 3: 8 * 1 + 3 * 1 = 11 of the grid's 16.
    assert trial_epochs(8, 2, 1, 3) == 11
    # The paper's grid: 24 points, 12 epochs, rungs at 2 and 6: 24 * 2 + 8 * 4 + 3 * 6 = 98 of 288 (34 %).
    assert trial_epochs(24, 12, 2, 3) == 98
    # Control: no rung (grace period past the last epoch) runs the whole grid.
    assert trial_epochs(8, 2, 2, 3) == 16


def test_the_report_delay_hook_picks_trials_by_their_grid_number():
    assert report_delay("ab12c_00001", "1:2.5, 3:1") == 2.5
    assert report_delay("ab12c_00003", "1:2.5,3:1") == 1.0
    assert report_delay("ab12c_00002", "1:2.5,3:1") == 0.0
    assert report_delay("ab12c_00001", "") == 0.0


def test_the_scheduler_needs_a_metric():
    scheduler = SuccessiveHalvingScheduler(max_t=4, grace_period=1, reduction_factor=2, trials=1)
    with pytest.raises(ValueError, match="needs a metric"):
        scheduler.on_trial_add(None, FakeTrial(0))
