"""The ``tune`` section of ``params.yaml``: what is searched (the paper's grid) and how the search runs.

```yaml
tune:
  grid:                        # the searched dimensions (the paper's grid below)
    modality_dropout: [0.0, 0.1, 0.15, 0.2]
    d_model: [256, 512]
    n_layers: [2, 3, 4]
    window_readout: null       # optional: a list of none | audio | both (FusionConfig.window_readout)
    lr: null                   # optional: a list, or {low: .., high: ..} (log-uniform, random mode only)
    seed: null                 # optional: a list of seeds (repeats of every point)
  search:
    mode: grid                 # grid: every combination; random: num_samples draws (tune.choice per list)
    num_samples: 1             # grid: repeats of the whole grid; random: number of draws
    scheduler: asha            # asha | successive_halving (early stopping) | none (every trial runs all epochs)
    grace_period: 2            # epochs every trial gets before it can be stopped (the first rung)
    reduction_factor: 3        # only the best 1/reduction_factor go on at each rung
    cpus_per_trial: 1          # also the torch threads of a trial
    gpus_per_trial: 0.25       # used only where the cluster has GPUs
    max_concurrent_trials: null  # null = the cluster's CPUs // cpus_per_trial
```
The same keys may also be given flat (without ``grid``/``search``).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from exprfusion.core.errors import InputError
from exprfusion.core.strict_dicts import reject_unknown_keys
from exprfusion.model.fusion_config import WINDOW_READOUTS
from exprfusion.search.successive_halving import SuccessiveHalvingScheduler

MODES: tuple[str, ...] = ("grid", "random")
SCHEDULERS: tuple[str, ...] = ("asha", "successive_halving", "none")


def _number_list(name: str, values: Any, kind: type) -> list:
    """A non-empty list of ``kind`` values; YAML strings such as ``1e-4`` are accepted."""
    if not isinstance(values, list | tuple) or not values:
        raise InputError(f"tune.{name} must be a non-empty list, got {values!r}")
    try:
        converted = [kind(float(value)) if kind is int else kind(value) for value in values]
    except (TypeError, ValueError):
        raise InputError(f"tune.{name} must hold numbers, got {values!r}") from None
    if kind is int and any(float(value) != int(float(value)) for value in values):
        raise InputError(f"tune.{name} must hold integers, got {values!r}")
    return converted


@dataclass
class SearchSpace:
    """The searched dimensions; ``None`` for ``lr``/``seed`` keeps the train section's value."""

    REQUIRED_KEYS: ClassVar[tuple[str, ...]] = ("modality_dropout", "d_model", "n_layers")
    # FusionConfig keys a search may vary: the required three, and the window readout (none | audio | both).
    MODEL_KEYS: ClassVar[tuple[str, ...]] = (*REQUIRED_KEYS, "window_readout")
    TRAIN_KEYS: ClassVar[tuple[str, ...]] = ("lr", "seed")

    # Required: a grid key left out is an error, never a silent default grid.
    modality_dropout: list[float]
    d_model: list[int]
    n_layers: list[int]
    window_readout: list[str] | None = None
    lr: list[float] | dict[str, float] | None = None
    seed: list[int] | None = None
    mode: str = "grid"
    num_samples: int = 1

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"tune.mode must be one of {MODES}, got {self.mode!r}")
        self.modality_dropout = _number_list("modality_dropout", self.modality_dropout, float)
        if any(not 0.0 <= p <= 1.0 for p in self.modality_dropout):
            raise InputError(f"tune.modality_dropout values must lie in [0, 1], got {self.modality_dropout}")
        self.d_model = _number_list("d_model", self.d_model, int)
        self.n_layers = _number_list("n_layers", self.n_layers, int)
        if self.window_readout is not None:
            readouts = self.window_readout
            if (
                not isinstance(readouts, list | tuple)
                or not readouts
                or any(r not in WINDOW_READOUTS for r in readouts)
            ):
                raise InputError(f"tune.window_readout must be a non-empty list of {WINDOW_READOUTS}, got {readouts!r}")
            self.window_readout = list(readouts)
        if self.seed is not None:
            self.seed = _number_list("seed", self.seed, int)
        if isinstance(self.lr, dict):
            if self.mode != "random" or set(self.lr) != {"low", "high"}:
                raise InputError("tune.lr as {low, high} (log-uniform) needs mode: random and exactly those two keys")
            low, high = _number_list("lr", [self.lr["low"], self.lr["high"]], float)
            if not 0 < low < high:
                raise InputError(f"tune.lr needs 0 < low < high, got {self.lr}")
            self.lr = {"low": low, "high": high}
        elif self.lr is not None:
            self.lr = _number_list("lr", self.lr, float)
        if not isinstance(self.num_samples, int) or self.num_samples < 1:
            raise InputError(f"tune.num_samples must be an integer >= 1, got {self.num_samples!r}")

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


@dataclass
class SearchSettings:
    """How the search runs: the early-stopping scheduler and the resources of one trial."""

    scheduler: str = "asha"
    grace_period: int = 2
    reduction_factor: int = 3
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0.25
    max_concurrent_trials: int | None = None

    def __post_init__(self) -> None:
        if self.scheduler not in SCHEDULERS:
            raise InputError(f"tune.scheduler must be one of {SCHEDULERS}, got {self.scheduler!r}")
        for name, low in (("grace_period", 1), ("reduction_factor", 2)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise InputError(f"tune.{name} must be an integer >= {low}, got {value!r}")
        if not isinstance(self.cpus_per_trial, int | float) or self.cpus_per_trial <= 0:
            raise InputError(f"tune.cpus_per_trial must be > 0, got {self.cpus_per_trial!r}")
        if not isinstance(self.gpus_per_trial, int | float) or self.gpus_per_trial < 0:
            raise InputError(f"tune.gpus_per_trial must be >= 0, got {self.gpus_per_trial!r}")
        limit = self.max_concurrent_trials
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise InputError(f"tune.max_concurrent_trials must be null or an integer >= 1, got {limit!r}")

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


def parse_tune_params(section: dict[str, Any]) -> tuple[SearchSpace, SearchSettings]:
    """Split and validate the search's params; unknown keys are an ``InputError`` naming them.

    Keys may be flat, or grouped as in params.yaml: ``grid`` (the searched dimensions) and ``search`` (mode,
    scheduler, resources).
    """
    flat = {key: value for key, value in section.items() if key not in ("grid", "search")}
    for group in ("grid", "search"):
        values = section.get(group) or {}
        if not isinstance(values, dict):
            raise InputError(f"tune.{group} must be a mapping, got {values!r}")
        clash = sorted(set(values) & set(flat))
        if clash:
            raise InputError(f"tune params {clash} are given twice (in tune.{group} and beside it)")
        flat.update(values)
    space_keys = {f.name for f in fields(SearchSpace)}
    settings_keys = {f.name for f in fields(SearchSettings)}
    reject_unknown_keys(flat, space_keys | settings_keys, "tune params")
    missing = [key for key in SearchSpace.REQUIRED_KEYS if key not in flat]
    if missing:
        raise InputError(f"tune.grid is missing {', '.join(missing)}: give each searched dimension as a list")
    space = SearchSpace(**{k: v for k, v in flat.items() if k in space_keys})
    settings = SearchSettings(**{k: v for k, v in flat.items() if k in settings_keys})
    return space, settings


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
