"""One model being optimised on one training set: AdamW, warm-up + cosine, gradient clipping, the losses.

:class:`TrainingRun` is what :func:`exprfusion.training.train.train_model` (with its selection, checkpoints and resume)
and
:func:`exprfusion.training.train.refit_on_all` drive epoch by epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from exprfusion.core.devices import autocast_for
from exprfusion.data.split_tensors import SplitData, gather_windows
from exprfusion.inference.window_logits import centred_split
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.fusion_transformer import FusionTransformer
from exprfusion.training.expert_fit import fit_linear_experts
from exprfusion.training.losses import FocalLoss, inverse_frequency_weights
from exprfusion.training.train_config import TrainConfig


def warmup_cosine(total_steps: int, warmup_fraction: float) -> Callable[[int], float]:
    """Learning-rate multiplier: linear warm-up, then cosine decay to zero."""
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _frame_mask(config: FusionConfig, batch: Any) -> torch.Tensor | None:
    """Frames a single-modality baseline cannot see are not trained on (no face for the visual path)."""
    if config.fusion == "visual":
        return batch.face_mask
    if config.fusion == "audio":
        return batch.audio_mask
    return None


@dataclass
class TrainingRun:
    """One model being optimised on one training set: the model, its loss, optimiser, schedule and windows."""

    model: FusionTransformer
    config: TrainConfig
    train_data: SplitData
    loss_fn: FocalLoss
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    rows: torch.Tensor
    valid: torch.Tensor
    steps_per_epoch: int

    @classmethod
    def start(
        cls, model_config: FusionConfig, config: TrainConfig, train_data: SplitData, device: torch.device
    ) -> TrainingRun:
        """A freshly initialised model (standardisers fitted on ``train_data``) and its optimiser, scheduled over
        ``config.epochs`` epochs of ``train_data``'s windows."""
        model = FusionTransformer(model_config).to(device)
        if model_config.normalisation == "video":  # what the model reads at inference (inference.window_logits)
            train_data = centred_split(train_data)
        model.fit_standardisation(train_data.visual, train_data.audio, train_data.face_mask, train_data.audio_mask)
        fit_linear_experts(model, train_data)
        labels = train_data.labels[train_data.labels >= 0].cpu().numpy()
        counts = np.bincount(labels, minlength=model_config.n_classes)
        weights = inverse_frequency_weights(counts, config.class_weight_power) if config.class_weight_power else None
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        index = train_data.window_index(config.window, config.stride)
        steps_per_epoch = math.ceil(index.n_windows / config.batch_size)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_cosine(steps_per_epoch * config.epochs, config.warmup_fraction)
        )
        return cls(
            model=model,
            config=config,
            train_data=train_data,
            loss_fn=FocalLoss(gamma=config.focal_gamma, class_weights=weights).to(device),
            optimizer=optimizer,
            scheduler=scheduler,
            rows=torch.from_numpy(index.rows).to(device),
            valid=torch.from_numpy(index.valid).to(device),
            steps_per_epoch=steps_per_epoch,
        )

    def train_epoch(self, generator: torch.Generator) -> float:
        """One pass over the training windows in a random order; returns the mean training loss."""
        model, config = self.model, self.config
        model_config = model.config
        model.train()
        n_windows = self.rows.shape[0]
        order = torch.randperm(n_windows, generator=generator).to(self.rows.device)
        total_loss, n_batches = 0.0, 0
        for step in range(self.steps_per_epoch):
            ids = order[step * config.batch_size : (step + 1) * config.batch_size]
            batch = gather_windows(self.train_data, self.rows[ids], self.valid[ids])
            with autocast_for(self.rows.device, config.precision):
                branches: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
                logits = model(
                    batch.visual,
                    batch.audio,
                    batch.face_mask,
                    batch.audio_mask,
                    generator=generator,
                    branch_outputs=branches,
                )
            loss = self.loss_fn(logits, batch.labels, _frame_mask(model_config, batch))
            for branch_logits, seen in branches.values():  # each branch learns to predict alone where it sees
                loss = loss + model_config.aux_loss_weight * self.loss_fn(branch_logits, batch.labels, seen)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # The linear experts are frozen (no gradient), so the norm is the rest of the model's.
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            total_loss += float(loss.detach())
            n_batches += 1
        return total_loss / max(1, n_batches)

    def last_lr(self) -> float:
        """The learning rate of the last step."""
        return float(self.scheduler.get_last_lr()[0])

    def state(self) -> dict[str, Any]:
        """What a checkpoint needs to continue this run: model, optimiser and schedule states."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint's states (as :meth:`state` wrote them)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
