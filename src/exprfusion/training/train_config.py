"""The settings of one training run (TrainConfig): optimisation, windowing, selection and post-processing.

The model's own hyper-parameters live in :class:`exprfusion.model.fusion_config.FusionConfig`; the loop that uses
these is :mod:`exprfusion.training.train`. The defaults are the pipeline's (``params.yaml``'s ``tune.train``);
:meth:`TrainConfig.paper` is the paper's schedule.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field

from exprfusion.core.devices import PRECISIONS
from exprfusion.core.settings import settings, validate
from exprfusion.inference.window_logits import INFERENCE_BATCH_SIZE
from exprfusion.model.artifact import InferenceSettings

Selection = Literal["holdout", "validation"]
Precision = Literal[PRECISIONS]
SELECTIONS: tuple[str, ...] = typing.get_args(Selection)

Positive = Annotated[int, Field(ge=1)]
NonNegative = Annotated[float, Field(ge=0.0)]


@settings
class TrainConfig:
    """Optimisation, windowing and post-processing settings of one run (the model's own live in FusionConfig)."""

    epochs: Annotated[int, Field(ge=0)] = 2  # 0: the initial model; also the max_t of the search's scheduler
    batch_size: Positive = 32
    lr: Annotated[float, Field(gt=0.0)] = 5e-4
    weight_decay: NonNegative = 0.05
    warmup_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    grad_clip: Annotated[float, Field(gt=0.0)] = 1.0
    focal_gamma: NonNegative = 2.0
    class_weight_power: NonNegative = 0.0  # 0: no class weights; 1: inverse frequency
    # About 1 s at 30 fps. Public solutions use 90–300 frames, but on held-out subjects 32-frame windows beat 128
    # on every corpus measured (README, "Real-feature levers"): with few identities, a long window gives the
    # encoder a whole segment to memorise; the voting and the median filter supply the longer context.
    window: Positive = 32
    # None: half a window, so every frame away from the video edges is seen by two training windows.
    stride: Positive | None = None
    # None: half a window, so soft voting averages two windows per frame at inference (a quarter: four, 3.7x the
    # cost, within ±0.01).
    eval_stride: Positive | None = None
    # About 1 s at 30 fps; public solutions smooth over 40–100 frames, a shorter kernel keeps brief expressions.
    median_kernel: Positive = 31
    patience: Annotated[int, Field(ge=0)] = 4
    seed: Annotated[int, Field(ge=0)] = 0
    device: str = "auto"
    # auto: bf16 autocast where the hardware has it natively (CUDA, CPUs with AVX-512 BF16 or AMX), else fp32.
    precision: Precision = "auto"
    eval_batch_size: Positive = INFERENCE_BATCH_SIZE  # windows per inference pass (selection scoring)
    # What early stopping (and the search built on it) selects by: "holdout", a media-disjoint slice of the training
    # split (the validation split is then only reported), or "validation" (as papers that select on it do).
    selection: Selection = "holdout"
    # Share of the training split's labelled frames held out for selection.
    holdout_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    # With holdout selection: once the holdout has chosen the epoch, train again from scratch on the whole training
    # split (same seed and schedule) up to that epoch, and keep that model; the holdout's 20 % of the subjects
    # are worth more as training data than as a stopping rule. The search's trials only select and never refit.
    refit: bool = True

    def __post_init__(self) -> None:
        if self.median_kernel % 2 == 0:
            raise ValueError(f"median_kernel must be odd, got {self.median_kernel}")
        if self.stride is None:
            self.stride = max(1, self.window // 2)
        if self.eval_stride is None:
            self.eval_stride = max(1, self.window // 2)

    def inference(self) -> InferenceSettings:
        """The inference settings a model trained with this config should be served with."""
        return InferenceSettings(window=self.window, stride=self.eval_stride, median_kernel=self.median_kernel)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for MLflow and JSON)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], path: str = "", where: str = "") -> TrainConfig:
        """Build from a dict; unknown keys and bad values are an error naming them (by dotted ``path`` when given,
        after ``where``, the file they come from)."""
        return validate(cls, dict(values), where=where, path=path or "TrainConfig")

    @classmethod
    def paper(cls, **changes: Any) -> TrainConfig:
        """The paper's schedule (``PAPER_TRAIN``: 12 epochs, inference windows a quarter window apart), with
        ``changes``: what ``benchmarks/ablation.py`` trains."""
        window = changes.get("window", cls.window)
        return cls(**{**PAPER_TRAIN, "eval_stride": max(1, window // 4), **changes})


# The paper's schedule; the inference stride is a quarter of the window (four votes per frame).
PAPER_TRAIN: dict[str, Any] = {"epochs": 12}
