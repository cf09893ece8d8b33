"""The ``tune`` section of ``params.yaml``: what is searched (the paper's grid) and how the search runs.

```yaml
tune:
  grid:                        # the searched dimensions (the defaults: the pipeline's 8 points; the paper's grid is
    modality_dropout: [0.1, 0.3]   # p [0.0, 0.1, 0.15, 0.2], d [256, 512], l [2, 3, 4])
    d_model: [128]
    n_layers: [1, 2]
    window_readout: [none, both]   # a list of none | audio | both (FusionConfig.window_readout), or null
    lr: null                   # optional: a list, or {low: .., high: ..} (log-uniform, random mode only)
    seed: null                 # optional: a list of seeds (repeats of every point)
  search:
    mode: grid                 # grid: every combination; random: num_samples draws (tune.choice per list)
    num_samples: 1             # grid: repeats of the whole grid; random: number of draws
    scheduler: successive_halving  # successive_halving | asha (early stopping) | none (every trial runs all epochs)
    grace_period: 1            # epochs every trial gets before it can be stopped (the first rung)
    reduction_factor: 3        # only the best 1/reduction_factor go on at each rung
    cpus_per_trial: 1          # also the torch threads of a trial
    gpus_per_trial: 0.25       # used only where the cluster has GPUs
    max_concurrent_trials: null  # null = the cluster's CPUs // cpus_per_trial
```
The same keys may also be given flat (without ``grid``/``search``). The settings classes own the defaults:
:class:`SearchDimensions` (``tune.grid``), :class:`SearchSpace` (the dimensions with ``mode`` and ``num_samples``),
:class:`SearchSettings` and :class:`SearchParams` (``tune.search``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import Field
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from exprfusion.core.errors import InputError
from exprfusion.core.settings import settings, validate
from exprfusion.model.fusion_config import WindowReadout
from exprfusion.search.successive_halving import SuccessiveHalvingScheduler

MODES: tuple[str, ...] = ("grid", "random")
SCHEDULERS: tuple[str, ...] = ("asha", "successive_halving", "none")
T = TypeVar("T")


Share = Annotated[float, Field(ge=0.0, le=1.0)]
Positive = Annotated[int, Field(ge=1)]
Values = Annotated[list[T], Field(min_length=1)]  # a non-empty list (YAML strings such as 1e-4 are numbers)


@settings
class SearchDimensions:
    """The searched dimensions (``tune.grid``); ``None`` for ``window_readout``, ``lr`` or ``seed`` keeps the model's
    or the train section's value. ``lr`` may also be ``{low: .., high: ..}``: log-uniform, random mode only."""

    modality_dropout: Values[Share] = field(default_factory=lambda: [0.1, 0.3])
    d_model: Values[Positive] = field(default_factory=lambda: [128])
    n_layers: Values[Positive] = field(default_factory=lambda: [1, 2])
    window_readout: Values[WindowReadout] | None = field(default_factory=lambda: ["none", "both"])
    lr: (
        Values[Annotated[float, Field(gt=0.0)]] | dict[Literal["low", "high"], Annotated[float, Field(gt=0.0)]] | None
    ) = None
    seed: Values[Annotated[int, Field(ge=0)]] | None = None


@settings
class SearchSpace(SearchDimensions):
    """The searched dimensions, and how they are sampled: ``grid`` (every combination, ``num_samples`` times) or
    ``random`` (``num_samples`` draws, ``tune.choice`` per list)."""

    # FusionConfig keys a search may vary, and TrainConfig keys.
    MODEL_KEYS: ClassVar[tuple[str, ...]] = ("modality_dropout", "d_model", "n_layers", "window_readout")
    TRAIN_KEYS: ClassVar[tuple[str, ...]] = ("lr", "seed")

    mode: Literal[MODES] = "grid"
    num_samples: Positive = 1

    def __post_init__(self) -> None:
        if isinstance(self.lr, dict) and (self.mode != "random" or set(self.lr) != {"low", "high"}):
            raise ValueError("lr as {low, high} (log-uniform) needs mode: random and exactly those two keys")
        if isinstance(self.lr, dict) and not self.lr["low"] < self.lr["high"]:
            raise ValueError(f"lr needs low < high, got {self.lr}")

    def dimensions(self) -> dict[str, Any]:
        """The searched keys and their values (lists, or an lr range), in a fixed order."""
        keys = (*self.MODEL_KEYS, *self.TRAIN_KEYS)
        return {key: getattr(self, key) for key in keys if getattr(self, key) is not None}

    def param_space(self) -> dict[str, Any]:
        """Ray Tune's ``param_space``: grid_search over every list (grid) or choice / loguniform (random)."""
        space: dict[str, Any] = {}
        for key, values in self.dimensions().items():
            if isinstance(values, dict):
                space[key] = tune.loguniform(values["low"], values["high"])
            else:
                space[key] = tune.grid_search(values) if self.mode == "grid" else tune.choice(values)
        return space

    def n_trials(self) -> int:
        """How many trials the search runs."""
        if self.mode == "random":
            return self.num_samples
        return self.num_samples * math.prod(len(values) for values in self.dimensions().values())


@settings
class SearchSettings:
    """How the search runs: the early-stopping scheduler and the resources of one trial."""

    scheduler: Literal[SCHEDULERS] = "successive_halving"
    grace_period: Positive = 1  # epochs every trial gets before it can be stopped
    reduction_factor: Annotated[int, Field(ge=2)] = 3
    cpus_per_trial: Annotated[float, Field(gt=0.0)] = 1
    gpus_per_trial: Annotated[float, Field(ge=0.0)] = 0.25  # used only where the cluster has GPUs
    max_concurrent_trials: Positive | None = None  # None: the cluster's CPUs // cpus_per_trial

    def trial_resources(self, cluster: dict[str, float]) -> tuple[dict[str, float], int]:
        """One trial's resources on a cluster (``ray.cluster_resources()``) and how many trials run at once.

        GPUs are requested (fractionally) only where the cluster has some; concurrency defaults to the cluster's
        CPUs divided by ``cpus_per_trial``.
        """
        gpus = self.gpus_per_trial if cluster.get("GPU", 0) > 0 else 0
        concurrency = self.max_concurrent_trials or max(1, int(cluster.get("CPU", 1) // self.cpus_per_trial))
        return {"cpu": self.cpus_per_trial, "gpu": gpus}, concurrency

    def make_scheduler(self, epochs: int, *, trials: int = 0, record: Path | None = None) -> TrialScheduler:
        """The early stopping on the trials' ``epoch`` (``max_t`` = the training epochs), or FIFO (every trial runs to
        its end). ASHA decides each trial as it reaches a rung; ``successive_halving``
        (:mod:`exprfusion.search.successive_halving`) decides a rung once all ``trials`` are in it, keeping its scores
        and decisions in ``record``."""
        if self.scheduler == "none":
            return FIFOScheduler()
        grace = min(self.grace_period, epochs)
        if self.scheduler == "successive_halving":
            return SuccessiveHalvingScheduler(
                max_t=epochs,
                grace_period=grace,
                reduction_factor=self.reduction_factor,
                trials=trials,
                record=record,
            )
        return ASHAScheduler(
            time_attr="epoch", max_t=epochs, grace_period=grace, reduction_factor=self.reduction_factor
        )


@settings
class SearchParams(SearchSettings):
    """``tune.search`` in params.yaml: how the search runs, with the space's ``mode`` and ``num_samples``."""

    mode: Literal[MODES] = SearchSpace.mode
    num_samples: Positive = SearchSpace.num_samples


def parse_tune_params(section: Mapping[str, Any]) -> tuple[SearchSpace, SearchSettings]:
    """Split and validate the search's params; unknown keys and bad values are an ``InputError`` naming them.

    Keys may be flat, or grouped as in params.yaml: ``grid`` (the searched dimensions; unset ones take
    :class:`SearchDimensions`' defaults) and ``search`` (mode, scheduler, resources).
    """
    groups = {"grid": dict(section.get("grid") or {}), "search": dict(section.get("search") or {})}
    owner = {
        **dict.fromkeys(SearchParams.__dataclass_fields__, "search"),
        **dict.fromkeys(SearchDimensions.__dataclass_fields__, "grid"),
    }
    unknown = []
    for key, value in section.items():
        if key in groups:
            continue
        if key not in owner:
            unknown.append(f"tune.{key}")
        elif key in groups[owner[key]]:
            raise InputError(f"tune params ['{key}'] are given twice (in tune.{owner[key]} and beside it)")
        else:
            groups[owner[key]][key] = value
    if unknown:
        raise InputError(f"{', '.join(unknown)}: unknown key; known: {sorted(owner)}")
    dimensions = validate(SearchDimensions, groups["grid"], path="tune.grid")
    search = validate(SearchParams, groups["search"], path="tune.search")
    sampling = {"mode": search.mode, "num_samples": search.num_samples}
    space = validate(SearchSpace, {**asdict(dimensions), **sampling}, path="tune")
    settings_values = {key: value for key, value in asdict(search).items() if key not in sampling}
    return space, SearchSettings(**settings_values)


def search_name(space: SearchSpace, settings: SearchSettings, model: dict, train: dict, corpus_hash: str) -> str:
    """The search's experiment name: a hash of everything that defines its results (not of its resources)."""
    identity = {
        "space": space.dimensions(),
        "mode": space.mode,
        "num_samples": space.num_samples,
        "scheduler": [settings.scheduler, settings.grace_period, settings.reduction_factor],
        "model": model,
        "train": train,
        "corpus": corpus_hash,
    }
    return "search-" + hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
