"""The train stage's model: the search's winning trial refit on every training video, or a run of its own.

A search's trials train with the final schedule and select their epoch on the holdout (``tune.train``), so the
winning trial *is* the selection run the train stage would otherwise repeat: the same model and training configs,
seed, holdout and schedule. When the final training config (``best.json``'s ``train`` with ``train.overrides``)
changes nothing that moves results, the stage takes the trial's chosen epoch and refits a fresh model on the whole
training split for that many epochs (:func:`exprfusion.training.train.refit_on_all`), exactly what
:func:`exprfusion.training.train.train_model` does after its own selection run. An override that moves results (more
epochs,
another learning rate, ...) or selection on validation makes the stage run
:func:`~exprfusion.training.train.train_model`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from exprfusion.core.devices import resolve_device
from exprfusion.core.errors import InputError, MissingInputError
from exprfusion.core.settings import partial, settings, validate
from exprfusion.data.corpus import Corpus
from exprfusion.data.split_tensors import load_split
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.tracking.registry import REGISTERED_NAME
from exprfusion.tracking.runs import DEFAULT_EXPERIMENT
from exprfusion.training.epoch_report import EpochReport
from exprfusion.training.normalisation_choice import NormalisationChoice
from exprfusion.training.selection_check import SplitSize
from exprfusion.training.train import (
    RESUMABLE_CHANGES,
    TrainResult,
    config_differences,
    refit_on_all,
    scored_result,
    sized_config,
    train_model,
)
from exprfusion.training.train_config import TrainConfig

TrainOverrides = partial(TrainConfig)  # train.overrides: any TrainConfig values, each checked as TrainConfig does


@settings(frozen=True)
class BestTrial:
    """``reports/best.json``: the search's winning trial, as :func:`exprfusion.search.tune.write_best` writes it (the
    train stage reads it with :meth:`read`)."""

    model: FusionConfig  # with the searched values and the normalisation the search resolved
    train: TrainConfig
    metrics: dict[str, Any]  # the trial's holdout scores at its best epoch, and ``best_epoch`` (from 0)
    normalisation_choice: NormalisationChoice | None = None
    history: list[EpochReport] = field(default_factory=list)
    parent_run_id: str | None = None
    trials: Annotated[int, Field(ge=1)] = 1
    selection_split: SplitSize | None = None  # the size of the split the trials were chosen on
    selection_warnings: list[str] = field(default_factory=list)  # when it could not tell them apart

    def __post_init__(self) -> None:
        if not isinstance(self.metrics.get("best_epoch"), int):
            raise ValueError(
                f"metrics.best_epoch must be the trial's best epoch, got {self.metrics.get('best_epoch')!r}"
            )

    @classmethod
    def read(cls, path: str | Path) -> BestTrial:
        """The best trial a ``best.json`` holds; a missing or malformed file is an ``InputError`` naming the file
        and the field."""
        path = Path(path)
        if not path.is_file():
            raise MissingInputError(f"{path}: no search result; run the tune stage")
        try:
            values = json.loads(path.read_text())
        except ValueError as error:
            raise InputError(f"{path}: not valid JSON ({error}); rerun the tune stage") from None
        return validate(cls, values, where=str(path))


@settings(frozen=True)
class TrainStageParams:
    """The ``train`` section of ``params.yaml``: where the final run is logged and registered, and the
    :class:`TrainConfig` values that replace the best trial's (``overrides``)."""

    experiment: str = DEFAULT_EXPERIMENT
    registered_name: str = REGISTERED_NAME
    overrides: TrainOverrides = Field(default_factory=TrainOverrides)

    def given_overrides(self) -> dict[str, Any]:
        """The overrides the section sets (the others keep the best trial's values)."""
        return self.overrides.model_dump(exclude_unset=True)


@dataclass(frozen=True)
class SearchSelection:
    """What the winning trial's holdout selection decided, as ``best.json`` records it."""

    train: dict[str, Any]  # the trial's training config
    best_epoch: int  # counted from 0
    metrics: dict[str, Any]  # the trial's holdout scores at its best epoch (the numbers, and macro_f1_ci)
    history: list[EpochReport] = field(default_factory=list)
    # How the search resolved ``normalisation: auto`` before its trials (None: the normalisation was set).
    normalisation_choice: NormalisationChoice | None = None

    @classmethod
    def from_best(cls, best: BestTrial) -> SearchSelection:
        """The selection of a search's best trial."""
        scalars: dict[str, Any] = {
            key: float(value)
            for key, value in best.metrics.items()
            if key != "best_epoch" and isinstance(value, int | float)
        }
        if best.metrics.get("macro_f1_ci") is not None:
            scalars["macro_f1_ci"] = [float(bound) for bound in best.metrics["macro_f1_ci"]]
        return cls(
            best.train.to_dict(), best.metrics["best_epoch"], scalars, list(best.history), best.normalisation_choice
        )

    def differences(self, final: TrainConfig) -> list[str]:
        """Why ``final`` cannot take this selection: each setting that moves results and differs (empty: it can).

        A selection on validation is never taken over: its trial was chosen on the split it would then report.
        """
        trial = TrainConfig.from_dict(self.train).to_dict()
        problems = config_differences(trial, final.to_dict(), RESUMABLE_CHANGES, where=("in the search", "here"))
        if final.selection != "holdout" or not final.refit:
            problems.append("the final run selects on validation or does not refit")
        if self.best_epoch < 0:
            problems.append("the trial recorded no best epoch")
        return problems


@dataclass(frozen=True)
class FinalTraining:
    """The train stage's model and how it was obtained."""

    result: TrainResult
    config: TrainConfig
    reused_selection: bool  # True: the search's selection was taken over, and only the refit ran
    how: str  # one line for the stage's output


def final_configs(best: BestTrial, overrides: Mapping[str, Any] | None = None) -> tuple[FusionConfig, TrainConfig]:
    """The model and training configs the train stage trains: the best trial's, with ``train.overrides``."""
    config = TrainConfig.from_dict({**best.train.to_dict(), **(overrides or {})}, path="train.overrides")
    return best.model, config


def train_final(
    corpus: Corpus,
    best: BestTrial | Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    *,
    best_path: str | Path = "best.json",
    progress: Callable[[int, int], None] | None = None,
) -> FinalTraining:
    """Train the model the train stage keeps from a search's ``best.json`` payload and ``train.overrides``.

    The winning trial's selection is taken over when the final config does not differ from the trial's in a
    setting that moves results (:meth:`SearchSelection.differences`); otherwise the final config is trained from
    scratch with its own selection run. Either way the model config is the trial's, whose normalisation the search
    resolved; the result carries that decision (``normalisation_choice``) for the stage's output and the artefact.
    """
    validate(TrainOverrides, dict(overrides or {}), path="train.overrides")  # names a misspelt override
    if not isinstance(best, BestTrial):
        best = validate(BestTrial, dict(best), where=str(best_path))
    selection = SearchSelection.from_best(best)
    model_config, config = final_configs(best, overrides)
    problems = selection.differences(config)
    if problems:
        result = train_model(corpus, model_config, config, progress=progress)
        how = f"trained with its own selection run ({'; '.join(problems)})"
    else:
        result = refit_selection(corpus, model_config, config, selection, progress)
        how = (
            f"refit the search's best trial on every training video for {_epochs(selection.best_epoch + 1)} (its "
            f"holdout chose epoch {selection.best_epoch + 1}: macro-F1 {selection.metrics.get('macro_f1', 0):.4f})"
        )
    if result.normalisation_choice is None:
        result = replace(result, normalisation_choice=selection.normalisation_choice)
    return FinalTraining(result, config, not problems, how)


def _epochs(count: int) -> str:
    return f"{count} epoch" + ("" if count == 1 else "s")


def refit_selection(
    corpus: Corpus,
    model_config: FusionConfig,
    config: TrainConfig,
    selection: SearchSelection,
    progress: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Refit ``model_config`` on the whole training split for the epochs ``selection`` chose, and score it on
    validation: the :class:`TrainResult` :func:`~exprfusion.training.train.train_model` returns after its own
    selection."""
    device = resolve_device(config.device)
    train_data, validation = load_split(corpus, "train"), load_split(corpus, "validation")
    sized = sized_config(model_config, config, train_data)
    model = refit_on_all(sized, config, train_data, selection.best_epoch + 1, device, progress)
    result = TrainResult(
        model=model,
        best_epoch=selection.best_epoch,
        best_metrics=dict(selection.metrics),
        history=list(selection.history),
        stopped_early=False,
        refit=True,
    )
    return scored_result(result, config, validation.to(device))
