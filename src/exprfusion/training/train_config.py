"""The settings of one training run (TrainConfig): optimisation, windowing, selection and post-processing.

The model's own hyper-parameters live in :class:`exprfusion.model.fusion_transformer.FusionConfig`; the loop that uses
these is
:mod:`exprfusion.training.train`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from exprfusion.core.devices import PRECISIONS
from exprfusion.core.errors import InputError
from exprfusion.core.strict_dicts import dataclass_from_dict
from exprfusion.inference.window_logits import INFERENCE_BATCH_SIZE
from exprfusion.model.artifact import InferenceSettings

SELECTIONS: tuple[str, ...] = ("holdout", "validation")


@dataclass
class TrainConfig:
    """Optimisation, windowing and post-processing settings of one run (the model's own live in FusionConfig)."""

    epochs: int = 12
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_fraction: float = 0.1
    grad_clip: float = 1.0
    focal_gamma: float = 2.0
    class_weight_power: float = 0.0
    # About 1 s at 30 fps. Public solutions use 90–300 frames, but on held-out subjects 32-frame windows beat 128
    # on every corpus measured (README, "Real-feature levers"): with few identities, a long window gives the
    # encoder a whole segment to memorise; the voting and the median filter supply the longer context.
    window: int = 32
    # None: half a window, so every frame away from the video edges is seen by two training windows.
    stride: int | None = None
    # None: a quarter window, so soft voting averages four windows per frame at inference.
    eval_stride: int | None = None
    # About 1 s at 30 fps; public solutions smooth over 40–100 frames, a shorter kernel keeps brief expressions.
    median_kernel: int = 31
    patience: int = 4
    seed: int = 0
    device: str = "auto"
    # auto: bf16 autocast where the hardware has it natively (CUDA, CPUs with AVX-512 BF16 or AMX), else fp32.
    precision: str = "auto"
    eval_batch_size: int = INFERENCE_BATCH_SIZE
    # What early stopping (and the search built on it) selects by: "holdout", a media-disjoint slice of the training
    # split (the validation split is then only reported), or "validation" (as papers that select on it do).
    selection: str = "holdout"
    holdout_fraction: float = 0.2  # share of the training split's labelled frames held out for selection
    # With holdout selection: once the holdout has chosen the epoch, train again from scratch on the whole training
    # split (same seed and schedule) up to that epoch, and keep that model; the holdout's 20 % of the subjects
    # are worth more as training data than as a stopping rule. The search's trials only select and never refit.
    refit: bool = True

    def __post_init__(self) -> None:
        if self.stride is None:
            self.stride = max(1, self.window // 2)
        if self.eval_stride is None:
            self.eval_stride = max(1, self.window // 4)
        if self.median_kernel < 1 or self.median_kernel % 2 == 0:
            raise InputError(f"median_kernel must be an odd integer >= 1, got {self.median_kernel}")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.selection not in SELECTIONS:
            raise InputError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")

    def inference(self) -> InferenceSettings:
        """The inference settings a model trained with this config should be served with."""
        return InferenceSettings(window=self.window, stride=self.eval_stride, median_kernel=self.median_kernel)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for MLflow and JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], path: str = "") -> TrainConfig:
        """Build from a dict; unknown keys are an error naming them (by dotted ``path`` when given)."""
        return dataclass_from_dict(cls, values, "training settings", path=path)
