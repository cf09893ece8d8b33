"""The schema of the whole ``params.yaml`` (:class:`PipelineParams`), and the model and training configs a file gives
one training run (:func:`run_configs`, what ``exprfusion train`` trains).

Each section's settings class lives with the code that owns it: ``data`` :mod:`exprfusion.sources.params`,
``validate`` :mod:`exprfusion.data.corpus_checks`, ``tune`` :mod:`exprfusion.search.tune_params`, ``train``
:mod:`exprfusion.search.final_training`, ``evaluate`` :mod:`exprfusion.evaluation.evaluate` and ``package``
:mod:`exprfusion.tracking.packaging`; this module, above them all, composes them. Every default is the pipeline's
value: the committed ``params.yaml`` states each one again for DVC (``tests/code/test_settings_defaults.py`` holds
them equal).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, field
from pathlib import Path
from typing import Any

import yaml

from exprfusion.core.errors import InputError
from exprfusion.core.params import SECTIONS, read_params
from exprfusion.core.settings import settings, validate
from exprfusion.data.corpus_checks import ValidationSettings
from exprfusion.evaluation.evaluate import EvaluateConfig
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.search.final_training import BestTrial, TrainStageParams, final_configs
from exprfusion.search.space import SearchSpace
from exprfusion.search.tune_params import TuneParams
from exprfusion.sources.params import DataParams
from exprfusion.tracking.packaging import PackageParams
from exprfusion.training.train_config import TrainConfig


@settings(frozen=True)
class PipelineParams:
    """The whole ``params.yaml``: one section per stage."""

    data: DataParams = field(default_factory=DataParams)
    validate: ValidationSettings = field(default_factory=ValidationSettings)
    tune: TuneParams = field(default_factory=TuneParams)
    train: TrainStageParams = field(default_factory=TrainStageParams)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    package: PackageParams = field(default_factory=PackageParams)

    @classmethod
    def read(cls, path: str | Path) -> PipelineParams:
        """The file validated as a whole; any bad key or value is an ``InputError`` naming the file and its path."""
        return validate(cls, read_params(path), where=str(path))


assert tuple(PipelineParams.__dataclass_fields__) == SECTIONS, "core.params.SECTIONS names the sections"


def searched_point(tune: TuneParams) -> dict[str, Any]:
    """The value of each searched dimension the grid gives a single value (the search then has no choice there)."""
    space = SearchSpace(**asdict(tune.grid), mode=tune.search.mode, num_samples=tune.search.num_samples)
    return {
        key: values[0] for key, values in space.dimensions().items() if isinstance(values, list) and len(values) == 1
    }


def run_configs(params: PipelineParams | None = None, changes: Iterable[str] = ()) -> tuple[FusionConfig, TrainConfig]:
    """The model and training configs of one training run (``exprfusion train``).

    Without ``params``: the library's defaults, which are the pipeline's. With them: what the train stage trains
    when the search's winner is fixed, i.e. ``tune.model`` and ``tune.train`` with each searched dimension that
    ``tune.grid`` gives one value, and ``train.overrides``; a dimension with several values keeps ``tune.model``'s
    (the search would choose). Then each ``changes`` item, ``model.<field>=<value>`` or ``train.<field>=<value>``
    (the value read as YAML), is validated as the configs validate their own fields.
    """
    params = params or PipelineParams()
    point = searched_point(params.tune)
    best = BestTrial(
        model=FusionConfig(**{**asdict(params.tune.model), **_in(point, FusionConfig)}),
        train=TrainConfig(**{**asdict(params.tune.train), **_in(point, TrainConfig)}),
        metrics={"best_epoch": 0},
    )
    model, train = final_configs(best, params.train.given_overrides())
    return apply_changes(model, train, changes)


def apply_changes(model: FusionConfig, train: TrainConfig, changes: Iterable[str]) -> tuple[FusionConfig, TrainConfig]:
    """``model`` and ``train`` with each ``model.<field>=<value>`` / ``train.<field>=<value>`` of ``changes``."""
    values: dict[str, dict[str, Any]] = {"model": {}, "train": {}}
    for change in changes:
        key, equals, text = change.partition("=")
        group, _, name = key.strip().partition(".")
        if not equals or group not in values or not name:
            raise InputError(f"--set {change!r}: expected model.<field>=<value> or train.<field>=<value>")
        try:
            values[group][name] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise InputError(f"--set {change!r}: the value is not valid YAML") from None
    model_values = {**model.to_dict(), **values["model"]}
    train_values = {**train.to_dict(), **values["train"]}
    if "window" in values["train"]:  # strides not set beside a new window follow it (half a window each)
        for stride in ("stride", "eval_stride"):
            if stride not in values["train"]:
                train_values[stride] = None
    return (
        validate(FusionConfig, model_values, where="--set", path="model"),
        validate(TrainConfig, train_values, where="--set", path="train"),
    )


def _in(point: Mapping[str, Any], schema: type) -> dict[str, Any]:
    return {key: value for key, value in point.items() if key in schema.__dataclass_fields__}
