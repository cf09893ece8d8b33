"""The ``tune`` section of ``params.yaml`` (:class:`TuneParams`): the search's grid and settings
(:mod:`exprfusion.search.space`) and the configs every trial starts from."""

from __future__ import annotations

from dataclasses import asdict, field
from typing import Any

from exprfusion.core.settings import settings
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.search.space import SearchDimensions, SearchParams
from exprfusion.tracking.runs import DEFAULT_EXPERIMENT
from exprfusion.training.train_config import TrainConfig


@settings(frozen=True)
class TuneParams:
    """The ``tune`` section: the MLflow experiment of the search, what it searches (``grid``), how it runs
    (``search``), and the model and training configs every trial starts from (``model``, ``train``)."""

    experiment: str = DEFAULT_EXPERIMENT
    grid: SearchDimensions = field(default_factory=SearchDimensions)
    search: SearchParams = field(default_factory=SearchParams)
    model: FusionConfig = field(default_factory=FusionConfig)  # feature widths come from the data
    train: TrainConfig = field(default_factory=TrainConfig)  # also the final model's (see the train section)

    def search_params(self) -> dict[str, Any]:
        """``grid`` and ``search`` as :func:`exprfusion.search.tune.run_search` takes them."""
        return {"grid": asdict(self.grid), "search": asdict(self.search)}
