"""Synchronous successive halving: early stopping decided from complete rungs, so the search's outcome never depends
on which trial happened to report first.

ASHA (``tune.search.scheduler: asha``) decides each trial the moment it reaches a rung, from whichever trials have
reported there so far; when another job slows one trial down, the same search stops other trials and can pick
another winner. This scheduler (``successive_halving``) decides a rung only once every trial in it has reported:

* rungs lie at ``grace_period * reduction_factor**k`` epochs, below the training epochs (as ASHA's);
* a trial reaching a rung before the rung is complete is PAUSED (Ray saves it and frees its slot; the trial's folder
  holds its checkpoint, see :mod:`exprfusion.search.trial`);
* the complete rung keeps the best ``ceil(n / reduction_factor)`` of its ``n`` trials by the selection score (the
  trial's running best selection macro-F1, on its holdout by default, :data:`exprfusion.search.tune.METRIC`; NaN
  ranks last), ties going to the trial first in the grid (the counter in Ray's trial id, which numbers the points in
  grid order), never to the first to arrive. The kept trials resume from their checkpoints, the others stop;
* a trial that ends before a rung (its own patience, a failure after its retries) leaves the rung without a score.

A rung counts as complete only once all ``trials`` of the search have been added, so a search must not cap its
concurrency through Ray's ``max_concurrent_trials``: Ray counts paused trials against that cap and would never start
the rest of the rung (:func:`exprfusion.search.tune.run_search` leaves the cap to the cluster's resources and refuses
``max_concurrent_trials`` below the number of trials).

The scores and decisions are written to ``record`` (JSON, atomically, a rung's scores in the order they arrived) before
the scheduler acts on them (not a top-level .json of Ray's experiment folder: Ray copies those aside on a restore and
back over the folder later). A restored search (Ray builds a fresh scheduler) reads the record back, and every
restarted trial first reports the last epoch it finished (:class:`exprfusion.search.trial.EpochReporter`), so a trial
waiting at an undecided rung waits again instead of training past it, and a trial stopped before the interruption
stops again.

On one machine the same search gives the same scores, stopped set and winner however its trials are timed (a trial
paused and resumed scores exactly as one that ran through: its checkpoint keeps the random state). What still varies
between machines is the arithmetic: with ``train.precision: auto`` training runs bf16 autocast where the hardware has
it (CUDA, CPUs with AMX or AVX-512 BF16) and fp32 elsewhere, and kernels differ between CPUs, so scores can differ in
their last digits and a near-tie at a rung can go the other way; ``precision: fp32`` removes the first. Measured on
one trial of params.yaml's grid (realistic corpus, d 128, 1 layer, 2 epochs, one thread, an AMX CPU): bf16 and fp32
gave the same holdout macro-F1 after epoch 1 (0.3642) and 0.3616 against 0.3620 after epoch 2 (-0.0004); fp32 with
one and with two torch threads gave identical scores.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from exprfusion.core.atomic import atomic_open

RECORD_NAME = "successive_halving.json"


def rung_milestones(max_t: int, grace_period: int, reduction_factor: int) -> list[int]:
    """The rungs' epochs: ``grace_period * reduction_factor**k`` below ``max_t`` (the trials' last epoch)."""
    milestones, milestone = [], grace_period
    while milestone < max_t:
        milestones.append(milestone)
        milestone *= reduction_factor
    return milestones


def trial_number(trial_id: str) -> int | None:
    """The counter Ray's variant generator puts at the end of a trial id (``"4fa2c_00003"`` -> 3), None if absent."""
    suffix = trial_id.rsplit("_", 1)[-1]
    return int(suffix) if suffix.isdigit() else None


def rung_survivors(
    scores: Mapping[str, float], order: Callable[[str], Any], reduction_factor: int, mode: str = "max"
) -> list[str]:
    """The trials a complete rung keeps: the best ``ceil(n / reduction_factor)`` of its ``n`` scores.

    Ties go to the trial first in ``order`` (a sort key); a NaN score ranks below every number.
    """
    sign = 1.0 if mode == "max" else -1.0

    def rank(trial_id: str) -> tuple[float, Any]:
        score = scores[trial_id]
        return (math.inf if math.isnan(score) else -sign * score, order(trial_id))

    keep = math.ceil(len(scores) / reduction_factor)
    return sorted(scores, key=rank)[:keep]


class SuccessiveHalvingScheduler(FIFOScheduler):
    """Ray Tune's scheduler for synchronous successive halving (see the module docstring).

    Args:
        max_t: the trials' last ``time_attr`` value (the training epochs); no rung lies at or beyond it.
        grace_period: the first rung.
        reduction_factor: each rung keeps ``1 / reduction_factor`` of its trials (rounded up).
        trials: how many trials the search adds; no rung is decided before all of them are in.
        time_attr: the reported progress the rungs count (the trials report ``epoch``, counted from 1).
        record: the JSON file of scores and decisions (None: kept in memory only, lost on a restore).
        metric, mode: the selection score and its direction (usually set by ``tune.TuneConfig``).
    """

    _supports_buffered_results = False

    def __init__(
        self,
        *,
        max_t: int,
        grace_period: int,
        reduction_factor: int,
        trials: int,
        time_attr: str = "epoch",
        record: str | Path | None = None,
        metric: str | None = None,
        mode: str | None = None,
    ) -> None:
        super().__init__()
        self.milestones = rung_milestones(max_t, grace_period, reduction_factor)
        self.reduction_factor = reduction_factor
        self.expected = trials
        self.time_attr = time_attr
        self.record = Path(record) if record else None
        self._metric, self._mode = metric, mode
        self._scores: list[dict[str, float]] = [{} for _ in self.milestones]  # per rung, in arrival order
        self._promoted: list[list[str] | None] = [None for _ in self.milestones]  # None: undecided
        self._trials: dict[str, Trial] = {}  # every trial added, by id
        self._added: dict[str, int] = {}  # trial id -> position of its first addition (order without a counter)
        self._ended: set[str] = set()  # completed, stopped, failed or removed
        self._loaded = False
        self._deciding = False

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        if (self._metric and metric) or (self._mode and mode):
            return False
        self._metric = metric or self._metric
        self._mode = mode or self._mode
        return True

    # -- state ------------------------------------------------------------------------------------------------------

    def order(self, trial_id: str) -> tuple[int, int]:
        """A trial's place in the grid: Ray's counter in its id (ids without one after all, in the order added)."""
        number = trial_number(trial_id)
        return (0, number) if number is not None else (1, self._added.get(trial_id, 0))

    def level(self, trial_id: str) -> int:
        """How many rungs the trial has passed (the index of the rung it is heading for)."""
        level = 0
        while level < len(self.milestones) and trial_id in (self._promoted[level] or ()):
            level += 1
        return level

    def stopped(self, trial_id: str) -> bool:
        """Whether a decided rung left the trial behind."""
        level = self.level(trial_id)
        return level < len(self.milestones) and self._promoted[level] is not None

    def waiting(self, trial_id: str) -> bool:
        """Whether the trial has its score in at an undecided rung."""
        level = self.level(trial_id)
        return level < len(self.milestones) and self._promoted[level] is None and trial_id in self._scores[level]

    def _load(self) -> None:
        """Read the record of an interrupted run of this search (once, before the first trial is added)."""
        self._loaded = True
        if not (self.record and self.record.is_file()):
            return
        saved = json.loads(self.record.read_text())
        if saved.get("milestones") != self.milestones or saved.get("reduction_factor") != self.reduction_factor:
            return
        self._scores = [dict(scores) for scores in saved["scores"]]
        self._promoted = [None if kept is None else list(kept) for kept in saved["promoted"]]

    def _save(self) -> None:
        if self.record is None:
            return
        payload = {
            "milestones": self.milestones,
            "reduction_factor": self.reduction_factor,
            "metric": self._metric,
            "mode": self._mode,
            "scores": self._scores,
            "promoted": self._promoted,
        }
        with atomic_open(self.record) as handle:
            json.dump(payload, handle, indent=1)

    def _score(self, result: dict[str, Any]) -> float:
        value = result.get(self._metric)
        return float(value) if isinstance(value, int | float) else math.nan

    # -- decisions --------------------------------------------------------------------------------------------------

    def _complete_rung(self) -> int | None:
        """The first undecided rung, if every trial heading for it has its score in or has ended."""
        if len(self._trials) < self.expected:
            return None
        for rung, (kept, scores) in enumerate(zip(self._promoted, self._scores, strict=True)):
            if kept is not None:
                continue
            heading = [trial_id for trial_id in self._trials if trial_id not in self._ended]
            missing = [trial_id for trial_id in heading if self.level(trial_id) == rung and trial_id not in scores]
            return None if missing else rung
        return None

    def _decide(self, controller: Any, current: str | None = None) -> None:
        """Decide every rung that is complete, then stop the paused trials left behind.

        ``current`` (the trial whose result is being processed) is left to the caller's returned decision. A running
        or pending trial left behind is stopped at its next result: a pending one is a trial of a restored search,
        which first reports its last epoch again, so Ray has its point and scores before it stops.
        """
        if self._deciding:  # stop_trial calls back into on_trial_remove
            return
        self._deciding = True
        try:
            while (rung := self._complete_rung()) is not None:
                scores = self._scores[rung]
                self._promoted[rung] = rung_survivors(scores, self.order, self.reduction_factor, self._mode or "max")
                self._save()
            for trial_id, trial in sorted(self._trials.items(), key=lambda item: self.order(item[0])):
                if trial_id == current or trial_id in self._ended or not self.stopped(trial_id):
                    continue
                if trial.status == Trial.PAUSED or trial.is_saving:
                    controller.stop_trial(trial)
        finally:
            self._deciding = False

    # -- Ray's scheduler interface ----------------------------------------------------------------------------------

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        if not self._metric:
            raise ValueError("SuccessiveHalvingScheduler needs a metric (tune.TuneConfig(metric=..., mode=...))")
        if not self._loaded:
            self._load()
        self._trials[trial.trial_id] = trial
        self._added.setdefault(trial.trial_id, len(self._added))
        if trial.status in (Trial.TERMINATED, Trial.ERROR):  # a finished trial of a restored search
            self._ended.add(trial.trial_id)
        else:  # new, restored unfinished, or requeued after a failure
            self._ended.discard(trial.trial_id)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        trial_id, progress = trial.trial_id, result.get(self.time_attr)
        if trial_id not in self._trials:
            self.on_trial_add(tune_controller, trial)
        if progress is None:
            return TrialScheduler.CONTINUE
        while True:
            if self.stopped(trial_id):
                return TrialScheduler.STOP
            rung = self.level(trial_id)
            if rung >= len(self.milestones) or progress < self.milestones[rung]:
                return TrialScheduler.CONTINUE
            if trial_id not in self._scores[rung]:
                self._scores[rung][trial_id] = self._score(result)
                self._save()
            self._decide(tune_controller, current=trial_id)
            if self._promoted[rung] is None:
                return TrialScheduler.PAUSE
            # The rung is decided: loop to stop the trial, or to check it against the next rung.

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> None:
        self._ended.add(trial.trial_id)

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        # A trial Ray retries is added again right after this; the rung is decided at the next choose_trial_to_run.
        self._ended.add(trial.trial_id)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self._ended.add(trial.trial_id)

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        """Decide what a trial's end completed, then the first pending trial, else the first paused one kept."""
        self._decide(tune_controller)
        trials = sorted(tune_controller.get_trials(), key=lambda trial: self.order(trial.trial_id))
        for trial in trials:
            if trial.status == Trial.PENDING:
                return trial
        for trial in trials:
            trial_id = trial.trial_id
            if trial.status == Trial.PAUSED and not self.stopped(trial_id) and not self.waiting(trial_id):
                return trial
        return None

    def debug_string(self) -> str:
        rungs = ", ".join(
            f"epoch {milestone}: {len(scores)} in, " + ("undecided" if kept is None else f"{len(kept)} kept")
            for milestone, scores, kept in zip(self.milestones, self._scores, self._promoted, strict=True)
        )
        return f"Using synchronous successive halving (rf {self.reduction_factor}): {rungs or 'no rungs'}"
