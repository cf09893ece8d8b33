"""What one training epoch produced: the record handed to per-epoch callbacks (MLflow logging, Ray Tune)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class EpochReport:
    """What one epoch produced; handed to the per-epoch callback (MLflow, Ray Tune)."""

    epoch: int
    train_loss: float
    lr: float
    seconds: float
    metrics: dict[str, Any]  # the selection split's scores (numbers) and per_class_f1 ({class: F1})
